"""``BrokerConnection``: the settings a service connects to NATS with, checked when they are read (a missing,
unreadable, malformed or world-readable file is refused with the setting's name and the fix), turned into
nats-py's connect options, and the broker URL's credentials taken out of the URL and never shown."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from citadel.errors import ConfigurationError
from citadel.messaging.connection import BrokerConnection, masked
from citadel.messaging.nats import NatsBroker
from tests.broker.nats_auth import Nkey, Operator, write_private
from tests.broker.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki() -> Iterator[Pki]:
    folder = Path(tempfile.mkdtemp(prefix="citadel-pki-"))
    try:
        yield make_pki(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    return write_private(tmp_path / "service.nk", Nkey.generate().seed + "\n")


@pytest.fixture
def creds_file(tmp_path: Path) -> Path:
    return write_private(tmp_path / "service.creds", Operator.issue().creds)


def test_no_settings_mean_no_options_but_the_inbox() -> None:
    assert BrokerConnection.from_files(creds_file=None, nkey_seed_file="", tls_ca=None).options(tls=False) == {
        "inbox_prefix": "_INBOX"
    }


def test_the_settings_map_to_nats_connect_options(pki: Pki, seed_file: Path) -> None:
    connection = BrokerConnection(
        nkey_seed_file=seed_file, tls_ca=pki.ca, tls_cert=pki.client.cert, tls_key=pki.client.key, inbox_prefix="_I.b"
    )
    options = connection.options(tls=True)
    assert set(options) == {"inbox_prefix", "nkeys_seed", "tls"}
    assert (options["inbox_prefix"], options["nkeys_seed"]) == ("_I.b", str(seed_file))
    context: ssl.SSLContext = options["tls"]
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_a_creds_file_maps_to_user_credentials(creds_file: Path) -> None:
    assert BrokerConnection(creds_file=creds_file).options(tls=False)["user_credentials"] == str(creds_file)


def test_tls_is_required_by_a_tls_url_or_any_tls_setting(pki: Pki) -> None:
    assert BrokerConnection().requires_tls("tls://h:4222")
    assert not BrokerConnection().requires_tls("nats://h:4222")
    assert BrokerConnection(tls_ca=pki.ca).requires_tls("nats://h:4222")


# -- the URL's credentials ---------------------------------------------------------------------------------


def test_user_and_password_leave_the_url_percent_decoded() -> None:
    url, connection = BrokerConnection().for_url("nats://bill%40ing:p%40ss%3Aw%2Frd@127.0.0.1:4222/shop")
    assert url == "nats://127.0.0.1:4222/shop"
    assert (connection.user, connection.password, connection.token) == ("bill@ing", "p@ss:w/rd", None)
    assert connection.options(tls=False) | {"inbox_prefix": None} == {
        "user": "bill@ing",
        "password": "p@ss:w/rd",
        "inbox_prefix": None,
    }


def test_a_token_leaves_the_url() -> None:
    url, connection = BrokerConnection().for_url("tls://s3cret-token@[::1]:4222")
    assert (url, connection.token, connection.user) == ("tls://[::1]:4222", "s3cret-token", None)


def test_a_broker_keeps_and_shows_no_credentials() -> None:
    broker = NatsBroker("nats://billing:s3cret@127.0.0.1:4222/shop")
    assert (broker.url, broker.prefix) == ("nats://127.0.0.1:4222", "shop")
    assert broker.connection.password == "s3cret"
    assert "s3cret" not in repr(broker.connection)


def test_masked_hides_the_password_or_token() -> None:
    assert masked("nats://billing:s3cret@h:4222/shop") == "nats://billing:***@h:4222/shop"
    assert masked("tls://s3cret@h:4222") == "tls://***@h:4222"
    assert masked("nats://h:4222/shop") == "nats://h:4222/shop"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://h:4222", "must start with nats:// or tls://"),
        ("h:4222", "must start with nats:// or tls://"),
        ("nats://:s3cret@h:4222", "empty user or token"),
    ],
)
def test_a_broken_broker_url_is_refused_without_showing_its_secret(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint) as refused:
        BrokerConnection().for_url(url)
    assert "s3cret" not in str(refused.value)


def test_credentials_in_the_url_and_a_seed_file_are_refused(seed_file: Path) -> None:
    with pytest.raises(ConfigurationError, match="authenticate one way"):
        NatsBroker("nats://billing:pw@h:4222", connection=BrokerConnection(nkey_seed_file=seed_file))


# -- files checked up front --------------------------------------------------------------------------------


def test_a_missing_seed_file_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="broker_nkey_seed_file: cannot read"):
        BrokerConnection(nkey_seed_file=tmp_path / "absent.nk")


def test_an_unreadable_seed_file_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="broker_nkey_seed_file: cannot read"):
        BrokerConnection(nkey_seed_file=tmp_path)  # a folder: no file to read


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_seed_file_others_may_read_is_refused_naming_chmod_600(seed_file: Path, mode: int) -> None:
    seed_file.chmod(mode)
    with pytest.raises(ConfigurationError, match=f"broker_nkey_seed_file: .*chmod 600 {re.escape(str(seed_file))}"):
        BrokerConnection(nkey_seed_file=seed_file)


def test_a_creds_file_others_may_read_is_refused_naming_chmod_600(creds_file: Path) -> None:
    creds_file.chmod(0o644)
    with pytest.raises(ConfigurationError, match=r"broker_creds_file: .*chmod 600"):
        BrokerConnection(creds_file=creds_file)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a seed\n",
        Nkey.generate().public + "\n",  # the public key, not the seed
        Nkey.generate(prefix=0).seed + "\n",  # an account's seed, not a user's
        (lambda seed: seed[:10] + ("B" if seed[10] == "A" else "A") + seed[11:])(Nkey.generate().seed),  # checksum
    ],
)
def test_a_seed_file_without_a_user_seed_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigurationError, match="broker_nkey_seed_file: the seed is not a NATS user NKEY seed"):
        BrokerConnection(nkey_seed_file=write_private(tmp_path / "bad.nk", text))


def test_a_creds_file_without_a_jwt_is_refused(tmp_path: Path) -> None:
    seed_only = f"-----BEGIN USER NKEY SEED-----\n{Nkey.generate().seed}\n------END USER NKEY SEED------\n"
    with pytest.raises(ConfigurationError, match=r"broker_creds_file: .* is not a NATS .creds file"):
        BrokerConnection(creds_file=write_private(tmp_path / "bad.creds", seed_only))


def test_a_creds_file_and_a_seed_file_together_are_refused(creds_file: Path, seed_file: Path) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        BrokerConnection(creds_file=creds_file, nkey_seed_file=seed_file)


def test_a_ca_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError, match=r"broker_tls_ca: .* holds no PEM CA certificate"):
        BrokerConnection(tls_ca=garbage)


def test_a_missing_ca_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="broker_tls_ca: cannot read"):
        BrokerConnection(tls_ca=tmp_path / "absent.pem")


def test_a_client_certificate_without_its_key_is_refused(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="set both broker_tls_cert and broker_tls_key"):
        BrokerConnection(tls_ca=pki.ca, tls_cert=pki.client.cert)


def test_a_client_key_that_does_not_match_its_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="broker_tls_cert and broker_tls_key"):
        BrokerConnection(tls_ca=pki.ca, tls_cert=pki.client.cert, tls_key=pki.server.key)


def test_an_encrypted_client_key_is_refused(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.client.key.read_bytes(), None)
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    path = write_private(tmp_path / "locked.pem", locked.decode())
    with pytest.raises(ConfigurationError, match="is encrypted"):
        BrokerConnection(tls_ca=pki.ca, tls_cert=pki.client.cert, tls_key=path)


def test_a_client_key_others_may_read_is_refused(pki: Pki, tmp_path: Path) -> None:
    shared = tmp_path / "key.pem"
    shared.write_bytes(pki.client.key.read_bytes())
    os.chmod(shared, 0o644)
    with pytest.raises(ConfigurationError, match=r"broker_tls_key: .*chmod 600"):
        BrokerConnection(tls_ca=pki.ca, tls_cert=pki.client.cert, tls_key=shared)


def test_an_inbox_prefix_with_wildcards_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="inbox prefix"):
        BrokerConnection(inbox_prefix="_INBOX.>")
