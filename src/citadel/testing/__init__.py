"""Test kit: given/when/then for deciders, and a running application on a throwaway in-memory store.

def test_a_paid_order_cannot_be_cancelled():
    given(order, OrderCreated(...), OrderPaid(...)).when(CancelOrder(...)).then_raises(DomainError)

``citadel.testing.store_suite`` (which needs pytest) is the conformance suite of store backends; this module does
not import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from citadel.app import Application
from citadel.domain import Decider
from citadel.messages import Command, Event
from citadel.store.base import EventStore

__all__ = ["Scenario", "given", "running", "settle"]

C = TypeVar("C", bound=Command)
S = TypeVar("S")
E = TypeVar("E", bound=Event)


class Scenario(Generic[C, S, E]):
    """A decider test: past events, one command, and the expected events, error or state."""

    def __init__(self, decider: Decider[C, S, E], history: Sequence[E] = ()) -> None:
        self.decider = decider
        self.history = list(history)
        self._command: C | None = None
        self._events: list[E] | None = None
        self._error: Exception | None = None

    def given(self, *events: E) -> Self:
        """Add past events to the stream."""
        self.history.extend(events)
        return self

    def when(self, command: C) -> Self:
        """Decide on ``command`` over the state folded from the history."""
        self._command = command
        self._events = None
        self._error = None
        state = self.decider.fold(self.history)
        try:
            self._events = list(self.decider.decide(command, state))
        except Exception as exc:
            self._error = exc
        return self

    def then(self, *expected: E) -> list[E]:
        """Assert the decision produced exactly ``expected`` (in order); return the events."""
        if self._error is not None:
            raise AssertionError(
                f"expected events {list(expected)!r}, but the decider raised {self._error!r}"
            ) from self._error
        events = self._decided()
        if events != list(expected):
            raise AssertionError(f"expected events\n  {list(expected)!r}\nbut got\n  {events!r}")
        return events

    def then_raises(self, error: type[Exception], match: str | None = None) -> Exception:
        """Assert the decision raised ``error`` (with a message matching ``match``); return it."""
        if self._error is None:
            raise AssertionError(f"expected {error.__name__}, but the decider returned {self._decided()!r}")
        if not isinstance(self._error, error):
            raise AssertionError(f"expected {error.__name__}, but the decider raised {self._error!r}") from self._error
        if match is not None and not re.search(match, str(self._error)):
            raise AssertionError(f"{self._error!r} does not match {match!r}")
        return self._error

    def then_state(self) -> S:
        """Return the state after the history and the decided events (for assertions on it)."""
        return self.decider.fold([*self.history, *self._decided()])

    def _decided(self) -> list[E]:
        if self._events is None:
            if self._error is not None:
                raise AssertionError(f"the decider raised {self._error!r}") from self._error
            raise AssertionError("call when(command) first")
        return self._events


def given(decider: Decider[C, S, E], *events: E) -> Scenario[C, S, E]:
    """Start a decider scenario with ``events`` as the stream's history."""
    return Scenario(decider, events)


@contextlib.asynccontextmanager
async def running(
    app: Application,
    directory: str | Path | None = None,
    *,
    store: str | EventStore | None = None,
    **store_options: Any,
) -> AsyncIterator[Application]:
    """Start ``app`` and stop it after: on ``store`` (a URL or a store) when given; else, with ``directory``, on a
    fresh SQLite file in it (``app.db``); else on a fresh in-memory store (``memory://``), gone at the end.
    ``store_options`` go to the store built here (``keyring``, ``idempotency_ttl``; SQLite's own too)."""
    if store is None:
        if directory is not None:
            from citadel.store.sqlite import SQLiteEventStore

            store = SQLiteEventStore(Path(directory) / "app.db", app.registry, **store_options)
        else:
            from citadel.store.memory import MemoryEventStore

            store = MemoryEventStore(app.registry, **store_options)
    await app.start(store=store)
    try:
        yield app
    finally:
        await app.stop()


async def settle(app: Application, timeout: float = 10.0) -> int:
    """Wait until every async projection and process manager has processed the whole log, including the
    events that their own reactions append; return the head position reached.

    Raises:
        TimeoutError: a consumer did not catch up within ``timeout`` seconds.
    """
    store = app.store
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        last = await store.last_position()
        while await store.head_position() < last:  # older transactions still in flight (PostgreSQL)
            if loop.time() > deadline:
                raise TimeoutError(f"position {last} did not become readable within {timeout} s")
            await store.wait_for_events(last - 1, 0.05)
        for name, consumer in app.consumers.items():
            if not await consumer.wait_for(last, max(0.0, deadline - loop.time())):
                raise TimeoutError(f"consumer {name} did not reach position {last} within {timeout} s")
        if await store.last_position() == last:
            return last
