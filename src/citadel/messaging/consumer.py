"""Checkpointed consumers of the event log, with leases, retries and dead letters.

A consumer reads the log in pages from its checkpoint, processes each page, and records how far it got.

Leases make a consumer run in exactly one process at a time: each process competes for the consumer's lease
row, the holder renews it as it works, and a standby takes over within one lease period when the holder
dies. Writes that matter (projection pages, checkpoints) renew the lease in their own transaction and fail
with ``LeaseLost`` when another process holds it, so even a paused process that wakes up late cannot apply
a page twice.

Failures never vanish into a log line: an event whose processing keeps failing is retried with exponential
backoff and then parked in the dead-letter table (with the error), and the consumer moves on. Store failures
(the database itself) are retried without limit, since skipping events because the disk hiccuped would
lose them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citadel.errors import ConfigurationError, LeaseLost, ServiceUnavailable, StoreError
from citadel.store.base import Lease

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

    Subclasses implement ``process(records, upto)``, which must leave every record processed (or dead-lettered);
    the base class then advances ``position`` to ``upto`` and persists it at least every ``persist_interval``
    seconds. A subclass that sets ``types`` (stored event names) is given only the events of those types: the
    store skips the others without decoding or decrypting them.
    ``active`` tells whether this process holds the lease (a standby process follows the stored checkpoint).
    """

    page_size = 500
    """Events read per page by a consumer of every event."""
    window = 5000
    """Events of the log scanned per page by a consumer that names its ``types``: it is given only those of its
    types (a fraction of them), so it scans further per page than ``page_size``, and saves its checkpoint less
    often per event it processes."""
    persist_interval = 0.2
    """Seconds between checkpoint saves while the consumer works through the log."""
    visible_within = 0.05
    """Seconds within which a caught-up consumer saves its position, for processes that wait on the stored
    checkpoint (they poll it as often). Saving at every page instead would cost a write per commit."""
    types: Collection[str] | None = None
    """The stored names of the events ``process`` needs; None: every event."""
    defer = 0.0
    """Seconds to stand by before competing for the lease the first time: a process that is not the consumer's
    first choice leaves it to the one that is (``App`` spreads consumers over a node's workers this way); if
    that process is not there, this one takes the lease after the wait."""

    def __init__(
        self, name: str, store: EventStore, *, owner: str, retry: RetryPolicy | None = None, lease_ttl: float = 5.0
    ) -> None:
        self.name = name
        self.store = store
        self.retry = retry or RetryPolicy()
        self.lease = Lease(name, owner, lease_ttl)
        self.position = 0
        self.saved_position = 0
        self.active = False
        self.last_error: str | None = None
        self.processed = 0
        """Events this process has handed to ``process`` since it was created (for a processing rate)."""
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._renew_at = 0.0
        self._saved_at = 0.0

    @property
    def running(self) -> bool:
        """Whether the consumer's task is alive (holding the lease or standing by)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start competing for the lease and following the log."""
        if self.running:
            return
        self.position = self.saved_position = await self.store.checkpoint(self.name) or 0
        self._progress = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"citadel-consumer-{self.name}")

    async def stop(self) -> None:
        """Stop, persist how far processing got, and give the lease up so another process takes over."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.active:
            with contextlib.suppress(StoreError, LeaseLost):
                if self.position > self.saved_position:
                    await self.store.save_checkpoint(self.name, self.position, self.lease)
                await self.store.release_lease(self.lease)
        self.active = False

    async def lag(self) -> int:
        """Return how many events of the log the consumer has yet to process (``EventStore.count_after``); from
        its stored checkpoint while another process holds the lease."""
        position = self.position if self.active else (await self.store.checkpoint(self.name) or 0)
        return await self.store.count_after(position)

    async def wait_for(self, position: int, timeout: float) -> bool:
        """Wait until ``position`` is processed (by this process, or by the lease holder); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.position < position:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if not self.active:  # another process does the work: watch its checkpoint
                stored = await self.store.checkpoint(self.name) or 0
                if stored >= position:
                    return True
                await asyncio.sleep(min(remaining, 0.05))
                continue
            progress = self._progress
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.25)):
                    await progress.wait()
        return True

    def nudge(self) -> None:
        """Make the consumer check its lease and checkpoint on its next turn (after a reset elsewhere)."""
        self._renew_at = 0.0

    def _advance(self, position: int) -> None:
        self.position = position
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

    async def _hold_lease(self) -> bool:
        """Take or renew the lease when due; on (re)gaining it, resume from the stored checkpoint."""
        now = asyncio.get_running_loop().time()
        if self.active and now < self._renew_at:
            return True
        held = await self.store.acquire_lease(self.lease)
        if held:
            stored = await self.store.checkpoint(self.name) or 0
            if not self.active or stored < self.saved_position:  # new holder, or the projection was reset
                self.position = self.saved_position = stored
                self._advance(stored)
            self._renew_at = now + self.lease.ttl / 3
        self.active = held
        return held

    async def _run(self) -> None:
        store = self.store
        if self.defer > 0:
            await asyncio.sleep(self.defer)
        while True:
            try:
                if not await self._hold_lease():
                    await asyncio.sleep(self.lease.ttl / 5)
                    continue
                if self.types is None:
                    records = await store.read_all(self.position + 1, self.page_size)
                    upto = records[-1].position if records else self.position
                else:
                    records, upto = await store.read_all_of(self.types, self.position + 1, self.window)
                if upto <= self.position:
                    # caught up: make the position visible to other processes (they wait on the checkpoint)
                    # soon, and wake up to save it if new events do not come first
                    pending = await self._persist(interval=self.visible_within)
                    await store.wait_for_events(self.position, pending or self.lease.ttl / 5)
                    continue
                if records:
                    await self.process(records, upto)
                    self.processed += len(records)
                self._advance(upto)
                await self._persist()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except LeaseLost:
                self.active = False
            except Exception as exc:
                # Only infrastructure failures get here (store, lease, a service that is down; handler
                # failures are retried per event);
                # retry from the checkpoint, without limit, with a pause.
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("consumer %s failed, retrying: %s", self.name, self.last_error)
                await asyncio.sleep(self.retry.max_delay / 5)

    async def _persist(self, *, interval: float | None = None) -> float:
        """Save the position when the last save is ``interval`` seconds old (``persist_interval`` by default);
        return the seconds until a save is due, 0 when nothing is left to save."""
        if self.position <= self.saved_position:
            return 0.0
        now = asyncio.get_running_loop().time()
        wait = (self.persist_interval if interval is None else interval) - (now - self._saved_at)
        if wait > 0:
            return wait
        await self.store.save_checkpoint(self.name, self.position, self.lease)
        self.saved_position = self.position
        self._saved_at = now
        return 0.0

    def saved(self, position: int) -> None:
        """Record that ``position`` was persisted as the checkpoint by a subclass's own write."""
        self.saved_position = position
        self._saved_at = asyncio.get_running_loop().time()

    async def process(self, records: Sequence[RecordedEvent], upto: int) -> None:
        """Process one page of the log (every record in it, in order where order matters), which ends at
        position ``upto`` (later than the last record when the page's last events were of other types)."""
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
            except (StoreError, ServiceUnavailable, LeaseLost, ConfigurationError, asyncio.CancelledError):
                # infrastructure, not the event: the consumer pauses and resumes from its checkpoint
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
