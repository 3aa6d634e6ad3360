"""How the conformance suite reaches the backend under test: the hooks a backend's test class implements, the
fixtures every suite class shares, and the event types and view the tests write.

A test class subclasses one or more suite classes and implements ``create_store``; pytest makes a new instance
of the class for each test, so attributes set in ``empty_storage`` are the test's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from citadel.messages import Event, EventRegistry
from citadel.store.base import EventStore
from citadel.views import View

__all__ = ["ITEMS", "Happened", "Noted", "StoreHarness", "found_at_rest", "make_registry"]


class Happened(Event, name="suite.Happened"):
    """The suite's most common event."""

    n: int


class Noted(Event, name="suite.Noted"):
    """A second event type, for reads filtered by type."""

    text: str


ITEMS = View("items", indexes=("colour",), unique=("sku",))
"""A view with an index and a unique field; every store the suite opens has its table."""
ITEMS.bind("suite")


def make_registry(extra_events: Sequence[type[Event]] = ()) -> EventRegistry:
    """The suite's event types, and ``extra_events``."""
    registry = EventRegistry([Happened, Noted])
    for event_type in extra_events:
        registry.register(event_type)
    return registry


def found_at_rest(stored: dict[str, bytes], needles: list[str]) -> list[tuple[str, str]]:
    """The ``(file, needle)`` pairs where a needle occurs in ``stored`` (``StoreHarness.stored_bytes``), as its
    bytes or as their hex (a ``pg_dump`` writes ``bytea`` columns in hex)."""
    return [
        (name, needle)
        for name, data in stored.items()
        for needle in needles
        if needle.encode() in data or needle.encode().hex().encode() in data.lower()
    ]


class StoreHarness:
    """The base of every suite class. A backend's test class implements ``create_store`` (required) and, for the
    suites that look at what a store keeps at rest (``EncryptionSuite``, ``ForgettingSuite``), the ``stored_*``
    hooks."""

    tmp_path: Path
    """The test's temporary folder (pytest's ``tmp_path``), set before ``empty_storage`` is called."""

    def create_store(self, registry: EventRegistry, **options: Any) -> EventStore:
        """Build (without opening) a store of the backend under test, on this test's storage: every store built
        during one test reaches the same data, as two processes on one database do, until ``empty_storage``.
        ``options`` are passed to the store's constructor (``keyring``, ``idempotency_ttl``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement create_store(registry, **options)")

    async def empty_storage(self) -> None:
        """Make the storage that ``create_store`` uses empty (called before each test, and by tests that need a
        second, separate storage). The default does nothing: override it unless every store starts empty."""

    async def stored_bytes(self) -> dict[str, bytes]:
        """Every byte the storage holds at rest, by file (or dump) name: what a thief of the disk would read."""
        raise NotImplementedError(f"{type(self).__name__} must implement stored_bytes() for the at-rest suites")

    async def stored_payloads(self, stream_id: str) -> list[bytes]:
        """The payloads of the stream's events as stored, in version order, read behind the store's back."""
        raise NotImplementedError(f"{type(self).__name__} must implement stored_payloads() for the at-rest suites")

    async def overwrite_payloads(self, stream_id: str, data: bytes) -> None:
        """Replace the stored payload of every event of the stream by ``data``, as an attacker with the disk
        would."""
        raise NotImplementedError(f"{type(self).__name__} must implement overwrite_payloads() for the at-rest suites")

    async def stored_idempotency_result(self, key: str) -> bytes | None:
        """An idempotency record's result as stored (None: no such record), read behind the store's back."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement stored_idempotency_result() for the at-rest suites"
        )

    @pytest.fixture
    async def fresh_storage(self, tmp_path: Path) -> None:
        """Give the test an empty storage."""
        self.tmp_path = tmp_path
        await self.empty_storage()

    @pytest.fixture
    async def store(self, fresh_storage: None) -> AsyncIterator[EventStore]:
        """An open store of the backend under test, on an empty storage."""
        async with self.opened() as opened:
            yield opened

    @contextlib.asynccontextmanager
    async def opened(self, *, extra_events: Sequence[type[Event]] = (), **options: Any) -> AsyncIterator[EventStore]:
        """Open a store on this test's storage (with ``ITEMS``'s table), and close it at the end."""
        store = self.create_store(make_registry(extra_events), **options)
        await store.open()
        try:
            await store.ensure_views([ITEMS])
            yield store
        finally:
            await store.close()
