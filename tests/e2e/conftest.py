"""The shop over HTTP in each deployment: one process on each storage backend, and three services (billing
alone, analytics alone, the rest), each with its own SQLite store, talking over the real NATS server.

Every test that takes ``client`` runs in all three; the client talks to the node that runs users, content
and orders, and that node forwards what runs elsewhere, exactly as a served node would.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from deployments import Deployment, broker_namespace, three_services
from shopper import over_http

from citadel import Application
from examples.shop import build_app
from tests.backends import clean_store_url

DEPLOYMENTS = ("sqlite", "postgres", "three-services")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "deployment" in metafunc.fixturenames:
        metafunc.parametrize("deployment", DEPLOYMENTS, indirect=True)


@pytest.fixture
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    if request.param == "three-services":
        async with three_services(tmp_path, broker_namespace()) as deployed:
            yield deployed
        return
    app = build_app(store=await clean_store_url(str(request.param), tmp_path))
    async with app:
        yield Deployment({"shop": app}, app)


@pytest.fixture
def shop(deployment: Deployment) -> Application:
    """The application the client talks to."""
    return deployment.entry


@pytest.fixture
async def client(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with contextlib.AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(over_http(app)) for app in deployment.services.values()]
        entry = nodes[list(deployment.services.values()).index(deployment.entry)]
        entry.nodes = nodes  # type: ignore[attr-defined]  # ``settle`` checks every node
        yield entry
