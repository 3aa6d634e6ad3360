"""The secured NATS server the broker tests run against: TLS required (with a CA made at test time), and one
account with JetStream whose users are the shop's services, each allowed its own modules' subjects and the
few others it needs (``nats_auth.service_permissions``), replies on an inbox prefix of its own."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nats
from nats.aio.client import Client

from citadel.messaging.connection import BrokerConnection
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from tests.broker.nats_auth import Nkey, nats_conf, service_permissions, write_private
from tests.broker.natsd import NatsServer, nats_server
from tests.broker.pki import Pki, make_pki

NAMESPACE = "shop"
SERVICES = {"users": ["users"], "billing": ["billing"], "shop": ["content", "orders", "analytics"]}
"""The services of the shop, and the modules each runs."""
CALLS = {"users": [], "billing": ["orders"], "shop": ["users", "billing"]}
"""The modules whose commands and queries each service sends, or whose events it imports."""


def inbox_of(service: str) -> str:
    """The reply subjects' prefix of ``service``: its NATS user may subscribe to its own replies only."""
    return f"_INBOX_{service}"


def permissions_of(service: str) -> dict[str, Any]:
    return service_permissions(NAMESPACE, SERVICES[service], CALLS[service], inbox=inbox_of(service))


@dataclass(frozen=True)
class Secured:
    """A running secured server, with what its clients need: the CA, passwords, billing's NKEY seed file."""

    server: NatsServer
    pki: Pki
    passwords: dict[str, str]
    seed_file: Path

    def url(self, user: str | None = None, password: str | None = None, *, scheme: str = "tls") -> str:
        """The broker URL of the shop on this server, with ``user`` and ``password`` percent-encoded in it."""
        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        return f"{scheme}://{auth}127.0.0.1:{self.server.port}/{NAMESPACE}"

    def connection(self, service: str = "billing", **settings: Any) -> BrokerConnection:
        """The connection settings of ``service``: this server's CA, and its inbox prefix."""
        return BrokerConnection(tls_ca=self.pki.ca, inbox_prefix=inbox_of(service), **settings)

    def broker(self, service: str, keys: ServiceKeys) -> NatsBroker:
        """The broker of ``service``: its user and password in the URL, the CA, its own inbox prefix."""
        url = self.url(service, self.passwords[service])
        return NatsBroker(url, keys=keys, connection=self.connection(service))

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca))

    async def client(self, user: str, errors: list[Exception], **options: Any) -> Client:
        """A plain nats-py client (what an intruder would use) as ``user``; NATS's errors land in ``errors``."""

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        return await nats.connect(
            self.server.tls_url,
            user=user,
            password=self.passwords[user],
            tls=self.tls(),
            allow_reconnect=False,
            connect_timeout=2,
            error_cb=on_error,
            **options,
        )


def _users(passwords: dict[str, str], nkey: Nkey) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = [
        {"user": name, "password": passwords[name], "permissions": permissions_of(name)} for name in SERVICES
    ]
    users.append({"nkey": nkey.public, "permissions": permissions_of("billing")})  # billing, by NKEY
    users.append({"user": "watcher", "password": passwords["watcher"]})  # sees everything, for the tests
    return users


@contextlib.contextmanager
def secured_server(*, verify_clients: bool = False) -> Iterator[Secured]:
    """Run the secured server (``verify_clients``: it asks for a client certificate its CA signed)."""
    folder = Path(tempfile.mkdtemp(prefix="citadel-secured-nats-"))
    try:
        pki = make_pki(folder / "pki")
        passwords = {name: secrets.token_urlsafe(12) for name in [*SERVICES, "watcher"]}
        passwords["billing"] += "@:/%"  # characters that must be percent-encoded in the URL, and survive it
        nkey = Nkey.generate()
        seed_file = write_private(folder / "billing.nk", f"{nkey.seed}\n")
        tls: dict[str, Any] = {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key)}
        tls |= {"ca_file": str(pki.ca), "timeout": 2, "verify": verify_clients}
        accounts = {"SHOP": {"jetstream": "enabled", "users": _users(passwords, nkey)}}
        config = f"tls {nats_conf(tls)}\naccounts {nats_conf(accounts)}\n"
        with nats_server(config, folder / "server") as server:
            yield Secured(server, pki, passwords, seed_file)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "services.md"


def guide_config() -> str:
    """The nats-server config that ``docs/services.md`` shows (the block after its "tested" marker)."""
    text = GUIDE.read_text()
    return text.split("<!-- nats-server config: tested -->\n```conf\n", 1)[1].split("```", 1)[0]


@dataclass(frozen=True)
class Guided:
    """A server running the guide's config: NKEY users, the CA, a seed file per service."""

    server: NatsServer
    pki: Pki
    seeds: dict[str, Path]

    def broker(self, service: str, keys: ServiceKeys) -> NatsBroker:
        """The broker of ``service`` as the guide configures it: its seed file and the CA."""
        connection = BrokerConnection(nkey_seed_file=self.seeds[service], tls_ca=self.pki.ca)
        return NatsBroker(f"tls://127.0.0.1:{self.server.port}/{NAMESPACE}", keys=keys, connection=connection)


@contextlib.contextmanager
def guide_server() -> Iterator[Guided]:
    """Run the guide's config: its own address and store, the test's certificates and NKEYs put in."""
    folder = Path(tempfile.mkdtemp(prefix="citadel-guide-nats-"))
    try:
        pki = make_pki(folder / "pki")
        pairs = {name: Nkey.generate() for name in SERVICES}
        seeds = {name: write_private(folder / f"{name}.nk", f"{pair.seed}\n") for name, pair in pairs.items()}
        config = re.sub(r"^(listen|jetstream)\b.*$", "", guide_config(), flags=re.MULTILINE)  # the test's own
        config = config.replace('"/etc/nats/', f'"{pki.ca.parent}/')
        env = {f"{name.upper()}_NKEY": pair.public for name, pair in pairs.items()}
        with nats_server(config, folder / "server", env=env) as server:
            yield Guided(server, pki, seeds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
