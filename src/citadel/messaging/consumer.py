"""Checkpointed consumers of the event log, with retries and dead letters.

A consumer reads the log in pages from its checkpoint, processes each page, and records how far it got.
Failures never vanish into a log line: an event whose processing keeps failing is retried with exponential
backoff and then parked in the dead-letter table (with the error), and the consumer moves on. Store failures
(the database itself) are retried without limit, since skipping events because the disk hiccuped would
lose them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citadel.errors import ConfigurationError, StoreError

if TYPE_CHECKING:
    from citadel.store.base import EventStore, RecordedEvent

__all__ = ["Consumer", "RetryPolicy"]

log = logging.getLogger("citadel.consumer")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry one event before parking it as a dead letter."""

    max_attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class Consumer:
    """Base of async projections and process managers: a task following the log from a checkpoint.

    Subclasses implement ``process(records)``, which must leave every record processed (or dead-lettered);
    the base class then advances ``position``. ``persist_every`` bounds how many positions of irrelevant events
    may pass before the checkpoint is written anyway.
    """

    page_size = 500
    persist_every = 1000

    def __init__(self, name: str, store: EventStore, *, retry: RetryPolicy | None = None) -> None:
        self.name = name
        self.store = store
        self.retry = retry or RetryPolicy()
        self.position = 0
        self.saved_position = 0
        self.last_error: str | None = None
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the consumer's task is alive."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Load the checkpoint and start following the log."""
        if self.running:
            return
        self.position = self.saved_position = await self.store.checkpoint(self.name) or 0
        self._progress = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"citadel-consumer-{self.name}")

    async def stop(self) -> None:
        """Stop following the log; the checkpoint stays where processing got."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.position > self.saved_position:
            with contextlib.suppress(StoreError):
                await self.store.save_checkpoint(self.name, self.position)
                self.saved_position = self.position

    async def lag(self) -> int:
        """Return how many positions the consumer is behind the head of the log."""
        return max(0, await self.store.head_position() - self.position)

    async def wait_for(self, position: int, timeout: float) -> bool:
        """Wait until the consumer has processed ``position``; return False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.position < position:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            progress = self._progress
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await progress.wait()
        return True

    def _advance(self, position: int) -> None:
        self.position = position
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

    async def _run(self) -> None:
        store = self.store
        while True:
            try:
                records = await store.read_all(self.position + 1, self.page_size)
                if not records:
                    await store.wait_for_events(self.position, 1.0)
                    continue
                await self.process(records)
                self._advance(records[-1].position)
                if self.position - self.saved_position >= self.persist_every:
                    await store.save_checkpoint(self.name, self.position)
                    self.saved_position = self.position
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Only infrastructure failures get here (handler failures are retried per event);
                # retry from the checkpoint, without limit, with a pause.
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("consumer %s failed, retrying: %s", self.name, self.last_error)
                await asyncio.sleep(self.retry.max_delay / 5)

    async def process(self, records: Sequence[RecordedEvent]) -> None:
        """Process one page of the log (every record in it, in order where order matters)."""
        raise NotImplementedError

    async def attempt(self, record: RecordedEvent, work: Callable[[], Awaitable[Any]]) -> bool:
        """Run ``work`` for ``record`` with retries; park the record as a dead letter when they run out.

        Returns True when the work succeeded, False when the record was dead-lettered.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                await work()
                return True
            except (StoreError, asyncio.CancelledError):
                raise
            except ConfigurationError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if attempt >= self.retry.max_attempts:
                    log.error(
                        "consumer %s parks event %s after %d attempts: %s", self.name, record.event_id, attempt, error
                    )
                    await self.store.add_dead_letter(self.name, record, error, attempt)
                    return False
                await asyncio.sleep(self.retry.delay(attempt))
