"""Running a projection handler inside a store transaction that cannot wait (SQLite's writer, the memory store)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable

from citadel.errors import ConfigurationError

__all__ = ["run_handler"]


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
