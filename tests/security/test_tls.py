"""``citadel serve --tls-cert --tls-key``: a real server (TCP; Citadel's own and granian, each) that speaks TLS 1.3
and nothing older.

The certificate is self-signed for 127.0.0.1 and localhost, made here with ``cryptography``; clients trust it
explicitly, so verification stays on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.processes import stop

ROOT = Path(__file__).resolve().parents[2]  # the repository root, so the server imports `examples`
CITADEL = str(Path(sys.executable).parent / "citadel")
STARTUP = 20.0

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Server:
    port: int
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-4000:]


def self_signed(folder: Path) -> Certificate:
    """Write a self-signed certificate for 127.0.0.1 and localhost and its unencrypted key (PEM, PKCS#8)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    found = Certificate(folder / "cert.pem", folder / "key.pem")
    found.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    found.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return found


def client(
    certificate: Certificate, *, minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A verifying client context that trusts only ``certificate``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(certificate.cert)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(port: int, path: str, context: ssl.SSLContext) -> tuple[int, bytes, str | None]:
    """``GET path`` over HTTPS; return the status, the body and the negotiated TLS version."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        tls = connection.sock.version() if isinstance(connection.sock, ssl.SSLSocket) else None
        return response.status, body, tls
    finally:
        connection.close()


def handshake(port: int, context: ssl.SSLContext) -> str | None:
    """Open a TLS connection to the server and return the negotiated version."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version()


@contextlib.contextmanager
def serving_tls(folder: Path, certificate: Certificate, kind: str) -> Iterator[Server]:
    """Run ``citadel serve examples.shop:app --tls-cert --tls-key --server KIND`` until the block ends, then stop it."""
    server = Server(free_port(), folder / "server.log")
    command = [CITADEL, "serve", "examples.shop:app", "--port", str(server.port), "--server", kind]
    command += ["--store", f"sqlite:///{folder / 'shop.db'}"]
    command += ["--tls-cert", str(certificate.cert), "--tls-key", str(certificate.key)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    env |= {  # development mode: the server makes its secret and key, in the test's folder
        "CITADEL_DEV": "1",
        "CITADEL_AUTH_SECRET_FILE": str(folder / "secret"),
        "CITADEL_MASTER_KEY_FILE": str(folder / "master-keys.json"),
    }
    with server.output.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(process, server, client(certificate, minimum=ssl.TLSVersion.TLSv1_3))
        try:
            yield server
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- server output ---\n{server.log()}") from exc
    finally:
        stop(process)


def wait_until_healthy(process: subprocess.Popen[bytes], server: Server, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"citadel serve exited with {process.returncode}:\n{server.log()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if get(server.port, "/health", context)[0] == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"citadel serve did not answer /health over HTTPS within {STARTUP} s:\n{server.log()}")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module", params=["citadel", "granian"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, certificate: Certificate
) -> Iterator[Server]:
    with serving_tls(tmp_path_factory.mktemp("server"), certificate, request.param) as running:
        yield running


def test_the_startup_line_announces_https(server: Server) -> None:
    assert f"on https://127.0.0.1:{server.port} " in server.log()
    assert "TLS 1.3 only" in server.log()


def test_a_client_that_offers_at_most_tls_1_2_fails_the_handshake(server: Server, certificate: Certificate) -> None:
    # granian answers with a protocol_version alert; Citadel's server (OpenSSL under asyncio) ends the handshake
    with pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|UNEXPECTED_EOF"):
        handshake(server.port, client(certificate, maximum=ssl.TLSVersion.TLSv1_2))


def test_a_tls_1_3_client_that_trusts_the_certificate_gets_health_over_tls_1_3(
    server: Server, certificate: Certificate
) -> None:
    status, body, version = get(server.port, "/health", client(certificate, minimum=ssl.TLSVersion.TLSv1_3))

    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    assert version == "TLSv1.3"


def test_a_client_that_does_not_trust_the_certificate_fails_verification(server: Server) -> None:
    stranger = ssl.create_default_context()  # the system's authorities, which never signed this certificate

    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server.port, stranger)


def test_plain_http_on_the_tls_port_gets_no_http_answer(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            answer = raw.recv(4096)
            assert not answer.startswith(b"HTTP/")


# -- refused configurations: one line that says what to do, exit 2, no traceback ----------------------------


def citadel_serve(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    env.update(COLUMNS="200", **variables)
    return subprocess.run(
        [CITADEL, "serve", "examples.shop:app", "--port", str(free_port()), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_a_certificate_without_a_key_is_refused_naming_the_option_to_add(certificate: Certificate) -> None:
    assert_refused(citadel_serve("--tls-cert", str(certificate.cert)), "pass --tls-key FILE", "CITADEL_TLS_KEY")


def test_a_key_without_a_certificate_is_refused_naming_the_option_to_add(certificate: Certificate) -> None:
    assert_refused(citadel_serve("--tls-key", str(certificate.key)), "pass --tls-cert FILE", "CITADEL_TLS_CERT")


def test_a_certificate_set_in_the_environment_alone_is_refused_too(certificate: Certificate) -> None:
    assert_refused(citadel_serve(CITADEL_TLS_CERT=str(certificate.cert)), "pass --tls-key FILE")


def test_a_missing_certificate_file_is_refused_naming_it(certificate: Certificate, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"

    assert_refused(
        citadel_serve("--tls-cert", str(missing), "--tls-key", str(certificate.key)),
        f"the TLS certificate file {missing} does not exist",
        "--tls-cert",
    )


def test_a_missing_key_file_is_refused_naming_it(certificate: Certificate, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"

    assert_refused(
        citadel_serve("--tls-cert", str(certificate.cert), "--tls-key", str(missing)),
        f"the TLS private key file {missing} does not exist",
        "--tls-key",
    )


def test_a_key_that_does_not_belong_to_the_certificate_is_refused(certificate: Certificate, tmp_path: Path) -> None:
    other = self_signed(tmp_path)

    assert_refused(
        citadel_serve("--tls-cert", str(certificate.cert), "--tls-key", str(other.key)),
        "cannot serve TLS with certificate",
    )


def test_an_encrypted_key_is_refused_without_asking_for_a_password(certificate: Certificate, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(certificate.key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )

    assert_refused(
        citadel_serve("--tls-cert", str(certificate.cert), "--tls-key", str(encrypted)), f"{encrypted} is encrypted"
    )
