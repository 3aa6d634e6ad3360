"""What every backend's store test shares: the event types, a view, and how to open each backend.

A new backend adds its name to ``BACKENDS`` and a branch to ``open_backend``; the suite stays unchanged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from citadel import Event, EventRegistry, View
from citadel.store.base import EventStore
from citadel.store.postgres import PostgresEventStore
from citadel.store.sqlite import SQLiteEventStore

BACKENDS = ["sqlite", "postgres"]

POSTGRES = os.environ.get("CITADEL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/citadel_test")
"""The test database; its schemas are dropped before each test (never point this at real data)."""


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
    elif backend == "postgres":
        await reset_postgres(POSTGRES)
        store = PostgresEventStore(POSTGRES, registry, **options)
    else:  # pragma: no cover - a backend listed without a branch is a mistake in this file
        raise AssertionError(f"unknown backend {backend}")
    await store.open()
    await store.ensure_views([ITEMS])
    try:
        yield store
    finally:
        await store.close()


StoreFactory = Callable[[], contextlib.AbstractAsyncContextManager[EventStore]]


async def reset_postgres(dsn: str) -> None:
    """Create the test database when missing, and drop every schema a test may have created in it."""
    import asyncpg

    base, _, name = dsn.rpartition("/")
    try:
        connection = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        connection = await asyncpg.connect(dsn)
    try:
        schemas = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' "
            "AND nspname NOT IN ('information_schema', 'public')"
        )
        for row in schemas:
            await connection.execute(f'DROP SCHEMA "{row[0]}" CASCADE')
    finally:
        await connection.close()
