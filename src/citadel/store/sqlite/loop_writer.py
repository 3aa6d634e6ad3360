"""The SQLite writer that runs batches on the event loop (``LoopWriter``, the default; see ``writer``).

The loop runs a turn's jobs at the end of that turn and commits them itself while commits are fast; while they
are slow, ``_Committer`` runs the ``COMMIT`` (the fsync) on a thread of its own and the loop serves meanwhile.
While another process holds the write lock, the loop tries again every millisecond instead of sleeping on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from citadel.errors import StoreError
from citadel.store.sqlite.group_commit import GroupCommitWriter
from citadel.store.sqlite.transaction import WriteJob, WriteTransaction
from citadel.store.sqlite.wal import Checkpointer

__all__ = ["LoopWriter"]

_LOCKED_RETRY = 0.001
"""Seconds before a writer on the event loop tries the write lock again. Not less: uvloop counts timers in whole
milliseconds and runs a shorter one on the next turn, so the loop would spin on the lock, taking the CPU its
holder needs to finish."""


class _Committer:
    """Runs the ``COMMIT`` of the event loop's batches on a thread of its own: with ``synchronous=FULL`` the
    commit waits for the disk (an fsync of the log), and the loop serves meanwhile instead of waiting with it.
    The interpreter lock is free while SQLite commits, so the handover costs two thread wake-ups a batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[tuple[sqlite3.Connection, Callable[[BaseException | None, float], None]] | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="citadel-sqlite-commit", daemon=True)
        self._thread.start()

    def commit(self, db: sqlite3.Connection, done: Callable[[BaseException | None, float], None]) -> None:
        """Commit ``db``'s transaction, then call ``done(error, seconds)`` on the loop (``error`` None on success,
        ``seconds`` the commit's wall time)."""
        self._queue.put((db, done))

    def stop(self) -> None:
        """Stop the thread once it has finished the commit in hand."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (work := self._queue.get()) is not None:
            db, done = work
            error: BaseException | None = None
            started = time.perf_counter()
            try:
                db.execute("COMMIT")
            except BaseException as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits for the answer
                self._loop.call_soon_threadsafe(done, error, time.perf_counter() - started)


class LoopWriter(GroupCommitWriter):
    """Writes on the event loop, at the end of the turn that submitted the jobs: the loop runs the jobs (they
    need the interpreter lock anyway) and commits them itself while commits are fast; while they are slow it
    hands the ``COMMIT`` (the fsync) to a thread and serves meanwhile, while the next batch queues up (see
    ``overlap``).
    Checkpoints run on a thread of their own. While another process holds the write lock, the loop keeps
    serving and tries again every millisecond, failing the batch once the connection's busy timeout has passed.
    """

    slow_commit = 0.003
    """Seconds of a commit's wall time above which commits count as slow, by their moving average
    (``commit_seconds``). Handing a fast commit over costs more than it spares: the thread waits for the
    interpreter lock (up to a switch interval on a busy loop) while the batch holds the database's write
    lock, and the loop learns of the commit a turn later. Under the 10,000-user load (``bench/vu.py``) commits
    made on the loop gave commands a lower latency."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], **options: Any) -> None:
        super().__init__(connect, **options)
        self._tx: WriteTransaction | None = None
        self._flushing: asyncio.Handle | None = None
        self._committing: asyncio.Future[None] | None = None
        self._busy_ms = 0
        self._locked_since: float | None = None
        self._committer: _Committer | None = None
        self.lock_retries = 0
        """How often a batch found the write lock taken by another process and was tried again later."""
        self.commit_seconds = 0.0
        """Moving average of the recent commits' wall time (each new one weighs a fifth)."""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the writer's connection and start the checkpointer and committer; jobs' futures resolve on
        ``loop``.

        Raises:
            StoreError: the writer's connection could not be opened.
        """
        self._loop = loop
        try:
            db = self._connect()
        except BaseException as exc:
            raise StoreError(f"cannot open the SQLite writer: {exc}") from exc
        self._busy_ms = db.execute("PRAGMA busy_timeout").fetchone()[0]
        db.execute("PRAGMA busy_timeout = 0")  # the loop never sleeps on the lock: it tries again later
        db.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread copies the log back instead
        self._tx = self._new_transaction(db)
        self._checkpointer = Checkpointer(self._connect)
        self._checkpointer.start()
        self._committer = _Committer(loop)

    def submit(self, job: WriteJob) -> asyncio.Future[Any]:
        """Queue a job; the returned future resolves with its result after its transaction commits."""
        if self._loop is None or self._tx is None:
            raise StoreError("the event store is not open; call `await store.open()` first")
        job.future = self._loop.create_future()
        self._pending.append(job)
        if self._flushing is None and self._committing is None:
            self._flushing = self._loop.call_soon(self._flush)
        return job.future

    def _take(self, *, split: bool = False) -> list[WriteJob]:
        size = self._max_batch if self._group_commit else 1
        if split:
            size = min(size, (len(self._pending) + 1) // 2)
        jobs, self._pending = self._pending[:size], self._pending[size:]
        return jobs

    overlap = True
    """While commits are slow, take half of a turn's jobs into a batch and start the next batch as soon as a
    commit ends, before its writers resume: the two halves take turns, one half's writers working on the loop
    while the other half's ``COMMIT`` runs on the thread (more events per second on the command-path benchmark
    with the serving switch interval, ``citadel.tuning``; without it, the thread waits too long for the
    interpreter lock for the halves to overlap; ``bench/writer_overlap.py``). False: one
    batch per turn, as many jobs as ``max_batch``."""

    def _flush(self, *, after_commit: bool = False) -> None:
        """Run pending jobs in one transaction and hand its commit over, or try again soon when another process
        holds the write lock."""
        self._flushing = None
        tx, loop, committer = self._tx, self._loop, self._committer
        if not self._pending or tx is None or loop is None or committer is None or self._committing is not None:
            return
        try:
            tx.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if "locked" in str(exc):  # another process writes: serve meanwhile, for up to the busy timeout
                now = time.monotonic()
                since = self._locked_since = self._locked_since or now
                if now - since < self._busy_ms / 1000:
                    self.lock_retries += 1
                    self._flushing = loop.call_later(_LOCKED_RETRY, self._flush)
                    return
            self._locked_since = None
            jobs, self._pending = self._pending, []
            self._fail(jobs, exc)
            return
        self._locked_since = None
        jobs = self._take(split=self.overlap and not after_commit and self.commit_seconds >= self.slow_commit)
        head = tx.head
        if not self._ready_to_commit(tx, jobs, head, begun=True):
            self._flush_soon()
            return
        if self.commit_seconds < self.slow_commit:
            started = time.perf_counter()
            self._commit(tx, jobs, head)
            self._timed(time.perf_counter() - started)
            self._flush_soon()
            return
        self._committing = loop.create_future()

        def committed(error: BaseException | None, seconds: float) -> None:
            self._timed(seconds)
            waiting, self._committing = self._committing, None
            if error is None:
                self._done(tx, jobs)
            else:
                self._abort(tx, jobs, head, error)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
            if self.overlap and self._pending and self._flushing is None:
                self._flush(after_commit=True)
            else:
                self._flush_soon()

        committer.commit(tx.db, committed)

    def _timed(self, seconds: float) -> None:
        self.commit_seconds += (seconds - self.commit_seconds) / 5

    def _flush_soon(self) -> None:
        if self._pending and self._flushing is None and self._committing is None and self._loop is not None:
            self._flushing = self._loop.call_soon(self._flush)

    def _redo_carefully(self, tx: WriteTransaction, jobs: list[WriteJob]) -> None:
        # Rare: wait for the lock here rather than give the batch up.
        tx.db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        try:
            super()._redo_carefully(tx, jobs)
        finally:
            tx.db.execute("PRAGMA busy_timeout = 0")

    async def close(self) -> None:
        """Write the queued jobs (waiting for the lock if need be), close the writer, its committer and its
        checkpointer."""
        tx = self._tx
        if tx is None:
            return
        while self._committing is not None:  # the commit in hand finishes first
            await asyncio.shield(self._committing)
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None
        if self._committer is not None:
            self._committer.stop()
            self._committer = None
        tx.db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        while self._pending:
            self._run_batch(tx, self._take())
        tx.db.close()
        self._tx = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
