"""The backend-agnostic store fixtures: every test in this folder runs against every backend.

A new backend adds its name to ``BACKENDS`` and a branch to ``open_backend``; the suite stays unchanged.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from citadel import Event, EventRegistry, View
from citadel.store.base import EventStore
from citadel.store.sqlite import SQLiteEventStore

BACKENDS = ["sqlite"]


class Happened(Event, name="suite.Happened"):
    n: int


class Noted(Event, name="suite.Noted"):
    text: str


ITEMS = View("items", indexes=("colour",), unique=("sku",))
ITEMS.bind("suite")


def make_registry() -> EventRegistry:
    return EventRegistry([Happened, Noted])


@contextlib.asynccontextmanager
async def open_backend(backend: str, directory: Path, **options: Any) -> AsyncIterator[EventStore]:
    registry = make_registry()
    if backend == "sqlite":
        store: EventStore = SQLiteEventStore(directory / "events.db", registry, **options)
    else:  # pragma: no cover - a backend listed without a branch is a mistake in this file
        raise AssertionError(f"unknown backend {backend}")
    await store.open()
    await store.ensure_views([ITEMS])
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[EventStore]:
    async with open_backend(backend, tmp_path) as opened:
        yield opened


StoreFactory = Callable[[], contextlib.AbstractAsyncContextManager[EventStore]]


@pytest.fixture
def store_factory(backend: str) -> StoreFactory:
    """Opens a fresh, empty store per call (for property tests that need one per example)."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[EventStore]:
        with tempfile.TemporaryDirectory(prefix="citadel-store-") as directory:
            async with open_backend(backend, Path(directory)) as opened:
                yield opened

    return factory
