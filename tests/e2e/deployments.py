"""How the end-to-end tests deploy the shop: one process, or three services over the real NATS server, which
share one set of generated service keys."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats

from citadel import Application
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from citadel.security.encryption import Keyring, MasterKeys
from examples.shop import build_app

NATS = "nats://127.0.0.1:4222"
SERVICES = {"billing": ["billing"], "analytics": ["analytics"], "shop": ["users", "content", "orders"]}


@dataclass
class Deployment:
    """The running applications of one deployment, by service name; ``entry`` serves the test's client."""

    services: dict[str, Application]
    entry: Application
    broker: str | None = None
    modules: dict[str, Sequence[str]] = field(default_factory=dict)
    keys: ServiceKeys | None = None
    """The service keys the services share (None with one process)."""

    def app_of(self, module: str) -> Application:
        """The application that runs ``module`` (its store holds that module's events)."""
        for name, app in self.services.items():
            if not self.modules or module in self.modules[name]:
                return app
        raise LookupError(module)

    async def heads(self) -> list[int]:
        """The head position of every service's log."""
        return [await app.store.head_position() for app in self.services.values()]


def broker_namespace() -> str:
    """A broker URL of its own for one test: its own subjects and events stream on the shared server."""
    return f"{NATS}/test-{uuid.uuid4().hex[:12]}"


async def drop_namespace(url: str) -> None:
    """Delete the events stream of a test's namespace (its consumers go with it)."""
    connection = await nats.connect(NATS)
    try:
        with contextlib.suppress(Exception):
            await connection.jetstream().delete_stream(NatsBroker(url).stream)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def three_services(directory: Path, broker: str) -> AsyncIterator[Deployment]:
    """The shop as three services over ``broker``, each on its own SQLite file in ``directory``."""
    urls = {name: f"sqlite:///{directory / name}.db" for name in SERVICES}
    async with services_on(urls, broker) as deployed:
        yield deployed


@contextlib.asynccontextmanager
async def services_on(urls: Mapping[str, str], broker: str, *, encrypted: bool = False) -> AsyncIterator[Deployment]:
    """The shop as three services over ``broker`` (billing; analytics; users, content and orders), each on its own
    store of ``urls``; with ``encrypted``, each with master keys of its own."""
    services: dict[str, Application] = {}
    keys = ServiceKeys.generate()
    try:
        for name, modules in SERVICES.items():
            keyring = Keyring(MasterKeys.generate()) if encrypted else None
            app = build_app(store=urls[name], keyring=keyring)
            await app.start(modules=modules, broker=NatsBroker(broker, keys=keys))
            services[name] = app
        yield Deployment(services, services["shop"], broker, SERVICES, keys)
    finally:
        for app in reversed(services.values()):
            await app.stop()
        await drop_namespace(broker)
