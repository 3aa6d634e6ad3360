"""Idempotency records expire: a lookup ignores a record older than the store's ``idempotency_ttl``, a new
record with the same key replaces it, and every process prunes expired ones in the background.

Pruning deletes at most ``Pruner.batch`` records per transaction, so that writers never wait behind a long
delete, and passes follow each other until one finds fewer; then it rests for ``Pruner.interval``. Several
processes pruning at once only share the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from citadel.errors import ConfigurationError

__all__ = ["Pruner", "check_ttl"]

log = logging.getLogger("citadel.store")


def check_ttl(ttl: float) -> float:
    """Return ``ttl`` (seconds an idempotency record is kept).

    Raises:
        ConfigurationError: it is not a positive number.
    """
    if not ttl > 0:
        raise ConfigurationError(f"idempotency_ttl must be a positive number of seconds, got {ttl!r}")
    return float(ttl)


class Pruner:
    """Deletes expired idempotency records in the background, through ``prune(limit)`` (one transaction that
    deletes at most ``limit`` of them, oldest first, and returns how many it deleted)."""

    interval = 300.0
    """Seconds between pruning runs (the first comes after between half of it and all of it, at random, so
    that processes started together do not prune together)."""
    batch = 1000
    """Most records deleted per transaction."""

    def __init__(self, prune: Callable[[int], Awaitable[int]]) -> None:
        self._prune = prune
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start pruning every ``interval`` seconds."""
        self._task = asyncio.create_task(self._run(), name="citadel-idempotency-pruner")

    async def stop(self) -> None:
        """Stop pruning (a transaction under way finishes)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def prune(self) -> int:
        """Delete every expired record now, ``batch`` per transaction; return how many."""
        total = 0
        while True:
            deleted = await self._prune(self.batch)
            total += deleted
            if deleted < self.batch:
                return total

    async def _run(self) -> None:
        await asyncio.sleep(self.interval * random.uniform(0.5, 1.0))  # nosec B311  # spreading, not secrecy
        while True:
            try:
                await self.prune()
            except Exception as exc:  # the store is busy or gone for a while: the records wait for the next run
                log.warning("pruning expired idempotency records failed, trying again later: %s", exc)
            await asyncio.sleep(self.interval)
