"""Running a projection handler inside a store transaction that cannot wait (SQLite's writer, the memory store)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from citadel.errors import ConfigurationError
from citadel.tracing import projection_span

if TYPE_CHECKING:
    from citadel.store.records import RecordedEvent
    from citadel.store.targets import ProjectionTarget, ViewTransaction

__all__ = ["run_handler", "traced_apply"]


def run_handler(result: Awaitable[None] | None) -> None:
    """Finish a projection handler's result inside a synchronous write transaction.

    Async handlers may await their view reads, which complete at once on SQLite and in memory; a handler that awaits
    anything else (network, sleep) would stall every writer, so it is refused.
    """
    if result is None:
        return
    if not inspect.iscoroutine(result):
        raise ConfigurationError("projection handlers return None or a coroutine")
    try:
        result.send(None)
    except StopIteration:
        return
    result.close()
    raise ConfigurationError(
        "a projection handler awaited something other than its views' reads; projections may not do I/O"
    )


def traced_apply(projection: ProjectionTarget, record: RecordedEvent, tx: ViewTransaction) -> None:
    """Apply one event to an inline projection inside its commit, in a ``project`` span (the batch's child): the
    writers call it only while tracing is on, and ``run_handler`` straight away otherwise."""
    with projection_span(projection.name, 1):
        run_handler(projection.apply(record, tx))
