"""What every backend's store test shares: the event types, a view, and how to open each backend.

A new backend adds its name to ``BACKENDS`` and a branch to ``open_backend``; the suite stays unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from citadel import Event, EventRegistry, View
from citadel.store.base import EventStore
from citadel.store.postgres import PostgresEventStore
from citadel.store.sqlite import SQLiteEventStore
from tests.backends import POSTGRES, reset_postgres

__all__ = ["BACKENDS", "ITEMS", "POSTGRES", "Happened", "Noted", "StoreFactory", "make_registry", "open_backend"]

BACKENDS = ["sqlite", "sqlite-thread", "postgres"]  # sqlite-thread: batches written on a writer thread


class Happened(Event, name="suite.Happened"):
    n: int


class Noted(Event, name="suite.Noted"):
    text: str


ITEMS = View("items", indexes=("colour",), unique=("sku",))
ITEMS.bind("suite")


def make_registry() -> EventRegistry:
    return EventRegistry([Happened, Noted])


@contextlib.asynccontextmanager
async def open_backend(
    backend: str, directory: Path, *, extra_events: Sequence[type[Event]] = (), fresh: bool = True, **options: Any
) -> AsyncIterator[EventStore]:
    registry = make_registry()
    for event_type in extra_events:
        registry.register(event_type)
    if backend in ("sqlite", "sqlite-thread"):
        writer = "thread" if backend == "sqlite-thread" else "loop"
        store: EventStore = SQLiteEventStore(directory / "events.db", registry, writer=writer, **options)
    elif backend == "postgres":
        if fresh:
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
