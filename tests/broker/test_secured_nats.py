"""Who may connect to a secured NATS server, and how: NATS itself refuses a client without credentials, with the
wrong password, or without TLS; Citadel's broker connects with a user and password or a token in the URL, an
NKEY seed file or a ``.creds`` file, over TLS with the CA (and a client certificate where the server asks for
one), and when refused it says why at once, without ever showing the password."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import socket
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import nats
import pytest
from nats.errors import Error as NatsError

from citadel.errors import ConfigurationError, ServiceUnavailable
from citadel.messaging.connection import BrokerConnection
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from tests.broker.nats_auth import Operator, write_private
from tests.broker.natsd import nats_server
from tests.broker.secured import NAMESPACE, Secured, secured_server

KEYS = ServiceKeys.generate()


@pytest.fixture(autouse=True)
async def refused_sockets_finalised() -> AsyncIterator[None]:
    """Collect, while the test's loop still runs, the sockets of connection attempts NATS refused: nats-py replaces
    a refused attempt's stream writer without closing it, and a failed TLS handshake leaves asyncio's TLS transport
    unclosed; collected after the loop closed, they would warn there. Their own code, not this project's."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module")
def secured() -> Iterator[Secured]:
    with secured_server() as running:
        yield running


@pytest.fixture(scope="module")
def verifying() -> Iterator[Secured]:
    with secured_server(verify_clients=True) as running:
        yield running


@contextlib.asynccontextmanager
async def connected(broker: NatsBroker) -> AsyncIterator[NatsBroker]:
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


async def stream_exists(broker: NatsBroker) -> bool:
    """Whether the broker's events stream is there (its ``connect`` created it, through its user's rights)."""
    return (await broker.js.stream_info(broker.stream)).config.name == broker.stream


# -- refused by NATS itself ---------------------------------------------------------------------------------


async def test_nats_refuses_a_client_without_credentials(secured: Secured) -> None:
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(secured.server.tls_url, tls=secured.tls(), allow_reconnect=False, connect_timeout=2)


async def test_nats_refuses_the_wrong_password(secured: Secured) -> None:
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(
            secured.server.tls_url,
            user="billing",
            password=secured.passwords["shop"],
            tls=secured.tls(),
            allow_reconnect=False,
            connect_timeout=2,
        )


def test_nats_refuses_a_plain_connection_where_tls_is_required(secured: Secured) -> None:
    with socket.create_connection(("127.0.0.1", secured.server.port), 2) as plain:
        info = json.loads(plain.makefile("rb").readline().removeprefix(b"INFO "))
        assert info["tls_required"] is True
        credentials = {"user": "billing", "pass": secured.passwords["billing"], "verbose": True}
        plain.sendall(f"CONNECT {json.dumps(credentials)}\r\nPING\r\n".encode())
        answer = plain.recv(4096)
    assert b"PONG" not in answer
    assert b"+OK" not in answer


# -- Citadel's broker, refused: at once, saying why, never showing the password -------------------------


async def test_a_broker_without_credentials_is_refused_at_once_naming_the_fix(secured: Secured) -> None:
    broker = NatsBroker(secured.url(), keys=KEYS, connection=secured.connection())
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=r"refused this service's credentials.*broker URL"):
        await broker.connect()
    assert time.monotonic() - started < broker.timeout


async def test_a_broker_with_the_wrong_password_never_shows_it(
    secured: Secured, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "Wr0ng-s3cret-" + secured.passwords["users"]
    caplog.set_level(logging.DEBUG)
    broker = NatsBroker(secured.url("billing", wrong), keys=KEYS, connection=secured.connection())
    with pytest.raises(ConfigurationError) as refused:
        await broker.connect()
    shown = [str(refused.value), repr(refused.value), broker.url, repr(broker.connection), caplog.text]
    shown += list(capsys.readouterr())
    assert not [text for text in shown if wrong in text or "s3cret" in text]
    assert broker.url == f"tls://127.0.0.1:{secured.server.port}"


async def test_a_broker_that_does_not_trust_the_servers_ca_is_refused(secured: Secured) -> None:
    url = secured.url("billing", secured.passwords["billing"])
    for connection in (BrokerConnection(), BrokerConnection(tls_ca=secured.pki.other_ca)):  # system CAs; another CA
        with pytest.raises(ConfigurationError, match=r"certificate that does not verify.*broker_tls_ca"):
            await NatsBroker(url, keys=KEYS, connection=connection).connect()


async def test_a_broker_that_cannot_reach_nats_fails_after_its_timeout(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        broker = NatsBroker(f"nats://127.0.0.1:{taken.getsockname()[1]}", keys=KEYS, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="cannot reach NATS"):
            await broker.connect()
    assert 1.0 <= time.monotonic() - started < 5.0


# -- Citadel's broker, let in ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["tls", "nats"])
async def test_a_broker_connects_with_user_and_password_in_the_url_over_tls(secured: Secured, scheme: str) -> None:
    url = secured.url("billing", secured.passwords["billing"], scheme=scheme)  # "@:/%" percent-encoded in it
    async with connected(NatsBroker(url, keys=KEYS, connection=secured.connection())) as broker:
        assert await stream_exists(broker)
        assert (broker.url, broker.prefix) == (f"{scheme}://127.0.0.1:{secured.server.port}", NAMESPACE)


async def test_a_broker_connects_with_an_nkey_seed_file(secured: Secured) -> None:
    connection = secured.connection(nkey_seed_file=secured.seed_file)
    async with connected(NatsBroker(secured.url(), keys=KEYS, connection=connection)) as broker:
        assert await stream_exists(broker)


async def test_a_broker_connects_with_a_token() -> None:
    token = "t0ken-" + KEYS.current
    with nats_server(f'authorization {{ token: "{token}" }}') as server:
        with pytest.raises(ConfigurationError, match="refused"):
            await NatsBroker(f"{server.url}/{NAMESPACE}", keys=KEYS).connect()
        async with connected(NatsBroker(f"nats://{token}@127.0.0.1:{server.port}/shop", keys=KEYS)) as broker:
            assert await stream_exists(broker)
            assert token not in broker.url + repr(broker.connection)


async def test_a_broker_connects_with_a_creds_file_an_operator_issued(tmp_path: Path) -> None:
    operator = Operator.issue()
    creds = write_private(tmp_path / "billing.creds", operator.creds)
    with nats_server(operator.config) as server:
        with pytest.raises(ConfigurationError, match="refused"):
            await NatsBroker(server.url, keys=KEYS).connect()
        connection = BrokerConnection(creds_file=creds)
        async with connected(NatsBroker(f"{server.url}/{NAMESPACE}", keys=KEYS, connection=connection)) as broker:
            assert await stream_exists(broker)


async def test_a_server_that_verifies_clients_refuses_a_broker_without_a_client_certificate(
    verifying: Secured,
) -> None:
    url = verifying.url("billing", verifying.passwords["billing"])
    with pytest.raises(ConfigurationError, match="broker_tls_cert"):
        await NatsBroker(url, keys=KEYS, connection=verifying.connection()).connect()


async def test_a_broker_with_a_client_certificate_connects_where_the_server_verifies_clients(
    verifying: Secured,
) -> None:
    client = verifying.pki.client
    connection = verifying.connection(tls_cert=client.cert, tls_key=client.key)
    url = verifying.url("billing", verifying.passwords["billing"])
    async with connected(NatsBroker(url, keys=KEYS, connection=connection)) as broker:
        assert await stream_exists(broker)


# -- a server that does not require TLS gets nothing -------------------------------------------------------


async def test_a_broker_sends_no_credentials_to_a_server_that_drops_tls(secured: Secured) -> None:
    """A man in the middle answers in the clear, its INFO without ``tls_required``: the broker sends nothing."""
    received = bytearray()

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {"server_id": "impostor", "version": "2.9.10", "proto": 1, "headers": True, "auth_required": True}
        writer.write(f"INFO {json.dumps(info)}\r\n".encode())
        await writer.drain()
        received.extend(await reader.read(65536))
        writer.close()

    server = await asyncio.start_server(impostor, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    secret = secured.passwords["billing"]
    try:
        for scheme, connection in (("tls", BrokerConnection()), ("nats", secured.connection())):
            url = f"{scheme}://billing:{quote(secret, safe='')}@127.0.0.1:{port}"
            with pytest.raises(ConfigurationError, match="does not require TLS"):
                await NatsBroker(url, keys=KEYS, connection=connection).connect()
    finally:
        server.close()
        await server.wait_closed()
    assert b"CONNECT" not in received
    assert secret.encode() not in received


def test_without_nats_server_a_test_fails_naming_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install nats-server"), nats_server(""):
        pass


def test_the_secured_servers_are_gone_with_their_files() -> None:
    """Every test above ran its own servers; none is left running (the fixtures stop them, and remove files)."""
    with secured_server() as running:
        folder, process = running.server.folder.parent, running.server.process
    assert process.poll() is not None
    assert not folder.exists()
