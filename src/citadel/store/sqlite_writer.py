"""Group commit for SQLite: one durable transaction per batch of pending writes.

Callers on the event loop submit jobs and await a future. The writer takes every job waiting, opens one
``BEGIN IMMEDIATE`` transaction, runs the jobs (a job that fails, such as an append with a stale expected
version, rolls back alone), commits once, and then resolves all the futures. With ``synchronous=FULL`` that
commit is one fsync for the whole batch: the disk's fsync rate stops being the event rate. Jobs submitted
during one turn of the event loop become one batch.

Where batches run:

* on the event loop (``LoopWriter``, the default): at the end of the turn that submitted the jobs. The jobs run
  on the loop (they need the interpreter lock anyway, so no thread waits for it and none is woken per job).
  The ``COMMIT`` (with ``synchronous=FULL``, an fsync) runs on the loop too while commits are fast, and goes to
  a thread of its own while they are slow (a disk whose fsync takes milliseconds), so that the loop serves
  meanwhile while the next batch queues up. On the command path the loop-run jobs take less CPU per command
  than a writer thread (``bench/store.py``). When another process holds the write lock the loop
  does not sleep on it: it serves and tries again 1 ms later (giving up after the busy timeout).
* on a writer thread of its own (``ThreadWriter``): while one batch commits, the next one queues up, and
  the thread is woken once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from citadel.errors import LeaseLost, StoreError
from citadel.store.sqlite_checkpoint import Checkpointer

__all__ = ["GroupCommitWriter", "LoopWriter", "ThreadWriter", "WriteJob", "WriteTransaction"]

_VERSION = "SELECT coalesce(max(version), 0) FROM citadel_events WHERE stream_id = ?"
_VERSION_CACHE = 100_000
log = logging.getLogger("citadel.store")
_LOCKED_RETRY = 0.001
"""Seconds before a writer on the event loop tries the write lock again. Not less: uvloop counts timers in whole
milliseconds and runs a shorter one on the next turn, so the loop would spin on the lock, taking the CPU its
holder needs to finish."""


class WriteTransaction:
    """State of the batch transaction that jobs run in: the connection, head position and clock.

    ``versions`` caches stream versions: those known at the last commit and those written by the jobs of the
    current batch that succeeded (``added`` says there are such). It is dropped whenever another connection
    (another process) has committed in between, so it never hides a foreign write, and when a batch that added
    to it does not commit (rare: the cache then fills again from the database).
    """

    __slots__ = ("_writer_of", "added", "data_version", "db", "head", "now", "undo", "versions", "writers")

    def __init__(self, db: sqlite3.Connection, writers: Callable[[Any], Any]) -> None:
        self.db = db
        self.head = 0
        self.now = 0.0
        self.writers = writers
        self._writer_of: dict[int, Any] = {}  # view id -> its writer: asked once per projected event
        self.versions: dict[str, int] = {}
        self.added = False
        self.data_version = -1
        self.undo: list[Callable[[], None]] = []  # what to forget in memory if the transaction does not commit

    def knows(self, stream_id: str) -> bool:
        """Whether the stream's version is known without reading it."""
        return stream_id in self.versions

    def stream_version(self, stream_id: str) -> int:
        """Return the stream's version as this transaction sees it."""
        version = self.versions.get(stream_id)
        if version is None:
            version = self.db.execute(_VERSION, (stream_id,)).fetchone()[0]
        return version

    def begin(self, *, started: bool = False) -> None:
        """Start the batch's transaction (unless ``started``: already begun) and load what other processes may
        have changed."""
        db = self.db
        if not started:
            db.execute("BEGIN IMMEDIATE")
        data_version = db.execute("PRAGMA data_version").fetchone()[0]
        if data_version != self.data_version or len(self.versions) > _VERSION_CACHE:
            self.versions.clear()
            self.head = db.execute("SELECT coalesce(max(position), 0) FROM citadel_events").fetchone()[0]
            self.data_version = data_version
        self.added = False
        self.now = time.time()

    def committed(self) -> None:
        """The batch committed: its stream versions hold for the next batch."""
        self.added = False
        self.undo.clear()

    def flush_views(self) -> None:
        """Write what the view writers hold back (increments) into the transaction: before it commits, and before
        anything reads the tables behind their backs."""
        for writer in self._writer_of.values():
            writer.flush()

    def discard_views(self) -> None:
        """Drop what the view writers hold back (the writes it belongs to were rolled back)."""
        for writer in self._writer_of.values():
            writer.discard()

    def rolled_back(self) -> None:
        """Undo what the batch changed in memory (its writes are gone)."""
        self.discard_views()
        if self.added:
            self.versions.clear()
            self.added = False
        for undo in self.undo:
            undo()
        self.undo.clear()

    def forget(self) -> None:
        """Drop every cached fact (after a failed batch)."""
        self.versions.clear()
        self.added = False
        self.data_version = -1

    def writer(self, view: Any) -> Any:
        """Return the writer of a view on this connection (``ViewTransaction`` protocol)."""
        writer = self._writer_of.get(id(view))
        if writer is None:
            writer = self._writer_of[id(view)] = self.writers(view)
        return writer


class WriteJob:
    """A unit of work for the writer. Subclasses implement ``run``, synchronously: it may run on a thread.

    A job whose ``run`` may fail after it has begun writing needs a savepoint, so that its failure rolls
    back its own writes only. A job whose ``needs_savepoint`` says False promises to raise expected errors
    before it writes (and to set ``writing`` when it starts); an error after that aborts the whole batch.
    """

    __slots__ = ("error", "future", "result", "writing")

    tracks_writes: ClassVar[bool] = False
    """True for jobs that set ``writing`` when they begin to write (others are assumed to have written)."""

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.writing = False

    def needs_savepoint(self) -> bool:
        """Whether ``run`` may fail after writing (asked by the writer, just before ``run``)."""
        return True

    def prepare(self, tx: WriteTransaction) -> None:
        """Write what every job of the batch may share, before any job runs (outside their savepoints)."""

    def run(self, tx: WriteTransaction) -> Any:
        """Do the job's writes inside the current transaction and return its result."""
        raise NotImplementedError


class _Stop(WriteJob):
    __slots__ = ()


class GroupCommitWriter:
    """Runs write jobs on a connection of their own, in batches that commit together. Where the batches run is
    the subclass's: ``LoopWriter`` (on the event loop) or ``ThreadWriter`` (on a thread of their own).

    Args:
        connect: opens the writer's connection.
        writers: returns the view writer for a view, bound to the writer connection.
        on_commit: called on the event loop after every successful commit with the new head position.
        group_commit: when False, every job gets its own transaction (the naive way, for comparison).
        max_batch: most jobs in one transaction.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        writers: Callable[[sqlite3.Connection, Any], Any],
        on_commit: Callable[[int], None],
        group_commit: bool = True,
        max_batch: int = 2000,
    ) -> None:
        self._connect = connect
        self._writers = writers
        self._on_commit = on_commit
        self._group_commit = group_commit
        self._max_batch = max_batch
        self._pending: list[WriteJob] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checkpointer: Checkpointer | None = None
        self.transactions = 0
        self.jobs = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the writer; jobs' futures resolve on ``loop``.

        Raises:
            StoreError: the writer's connection could not be opened.
        """
        raise NotImplementedError

    def submit(self, job: WriteJob) -> asyncio.Future[Any]:
        """Queue a job; the returned future resolves with its result after its transaction commits."""
        raise NotImplementedError

    async def close(self) -> None:
        """Write the queued jobs, then close the writer."""
        raise NotImplementedError

    async def scrub(self, timeout: float) -> bool:
        """Copy the write-ahead log back and empty it (see ``sqlite_checkpoint``), waiting up to ``timeout``
        seconds; False when it could not be done yet (it is tried again in the background)."""
        if self._checkpointer is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._checkpointer.scrub()), timeout)
        except TimeoutError:
            return False
        return True

    def _new_transaction(self, db: sqlite3.Connection) -> WriteTransaction:
        return WriteTransaction(db, lambda view: self._writers(db, view))

    def _run_batch(self, tx: WriteTransaction, jobs: list[WriteJob], *, begun: bool = False) -> None:
        head = tx.head
        if self._ready_to_commit(tx, jobs, head, begun=begun):
            self._commit(tx, jobs, head)

    def _commit(self, tx: WriteTransaction, jobs: list[WriteJob], head: int) -> None:
        """Commit the batch's transaction here and settle its jobs (``head``: the position before the batch)."""
        try:
            tx.db.execute("COMMIT")
        except BaseException as exc:
            self._abort(tx, jobs, head, exc)
            return
        self._done(tx, jobs)

    def _ready_to_commit(self, tx: WriteTransaction, jobs: list[WriteJob], head: int, *, begun: bool) -> bool:
        """Run the batch's jobs; True when their transaction waits for its ``COMMIT``, False when the batch is
        settled already (it failed, or its only job failed and rolled everything back)."""
        try:
            self._run_jobs(tx, jobs, begun=begun)
        except BaseException as exc:
            self._abort(tx, jobs, head, exc)
            return False
        if tx.db.in_transaction:
            return True
        tx.rolled_back()
        self._done(tx, jobs)
        return False

    def _run_jobs(self, tx: WriteTransaction, jobs: list[WriteJob], *, begun: bool = False) -> None:
        """Run the jobs in the batch's transaction, leaving it open for the commit (unless every job failed
        and rolled it back)."""
        if not self._attempt(tx, jobs, careful=False, begun=begun):
            # A job failed after writing: undo the batch and redo it with a savepoint per job, so that
            # only that job fails. Rare (a broken unique field, a failing projection), hence not the default.
            tx.db.execute("ROLLBACK")
            tx.rolled_back()
            # Reload everything at the next BEGIN: restoring the head read before the first attempt would
            # reuse positions another process wrote in between (that attempt's BEGIN had loaded them).
            tx.forget()
            self._redo_carefully(tx, jobs)

    def _abort(self, tx: WriteTransaction, jobs: list[WriteJob], head: int, exc: BaseException) -> None:
        """Roll the batch back and fail its jobs with ``exc``."""
        with contextlib.suppress(sqlite3.Error):
            if tx.db.in_transaction:
                tx.db.execute("ROLLBACK")
        tx.rolled_back()
        tx.forget()
        tx.head = head
        self._fail(jobs, exc)

    def _done(self, tx: WriteTransaction, jobs: list[WriteJob]) -> None:
        """The batch committed (or its only job failed and rolled it back): resolve the jobs."""
        tx.committed()
        self.transactions += 1
        self.jobs += len(jobs)
        self._deliver(jobs, tx.head)

    def _redo_carefully(self, tx: WriteTransaction, jobs: list[WriteJob]) -> None:
        self._attempt(tx, jobs, careful=True)

    def _fail(self, jobs: list[WriteJob], exc: BaseException) -> None:
        """Fail every job of a batch that could not be written."""
        error = StoreError(f"SQLite write failed: {exc}")
        error.__cause__ = exc
        for job in jobs:
            job.result, job.error = None, error
        self._deliver(jobs, None)

    def _attempt(self, tx: WriteTransaction, jobs: list[WriteJob], *, careful: bool, begun: bool = False) -> bool:
        """Run the batch's jobs in a new transaction (``begun``: already started); False when one failed after
        writing and others ran without a savepoint (the batch must be redone carefully)."""
        tx.begin(started=begun)
        for job in jobs:
            job.result, job.error, job.writing = None, None, False
            job.prepare(tx)
        if len(jobs) == 1:
            self._run_alone(tx, jobs[0])
            return True
        if careful:
            for job in jobs:
                self._run_in_savepoint(tx, job)
            return True
        for job in jobs:
            job.needs_savepoint()
            head = tx.head
            try:
                job.result = job.run(tx)
            except Exception as exc:
                # A lease is renewed before anything is written (``renew_lease`` comes first in every fenced
                # job), so a lost lease fails its job alone, as a refusal does.
                if job.writing or not (job.tracks_writes or isinstance(exc, LeaseLost)):
                    return False
                job.error = exc  # refused before writing anything: it fails alone as it is
                tx.head = head
        try:
            tx.flush_views()
        except Exception:
            return False  # redone carefully, each job's held writes then go in with the job
        return True

    @staticmethod
    def _run_alone(tx: WriteTransaction, job: WriteJob) -> None:
        head = tx.head
        job.needs_savepoint()  # alone, a failure rolls back the whole transaction anyway
        try:
            job.result = job.run(tx)
            tx.flush_views()
        except Exception as exc:
            job.error = exc
            tx.head = head
            tx.discard_views()
            tx.db.execute("ROLLBACK")

    @staticmethod
    def _run_in_savepoint(tx: WriteTransaction, job: WriteJob) -> None:
        db = tx.db
        head = tx.head
        if not job.needs_savepoint():
            try:
                job.result = job.run(tx)
                tx.flush_views()
            except Exception as exc:
                if job.writing:
                    raise  # its writes cannot be undone alone: fail the whole batch
                tx.discard_views()
                job.error = exc
            return
        db.execute("SAVEPOINT job")
        try:
            job.result = job.run(tx)
            tx.flush_views()  # inside the savepoint: the job's held writes are its own
        except Exception as exc:
            job.error = exc
            tx.head = head
            tx.discard_views()
            tx.versions.clear()  # it may have noted versions before its held writes failed (rare: reread them)
            db.execute("ROLLBACK TO job")
        db.execute("RELEASE job")

    def _deliver(self, jobs: list[WriteJob], head: int | None) -> None:
        """Resolve the jobs' futures (called on the event loop; ``ThreadWriter`` hands them over to it)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            self._resolve(jobs, head)

    def _resolve(self, jobs: list[WriteJob], head: int | None) -> None:
        for job in jobs:
            future = job.future
            if future is None or future.done():
                continue
            if job.error is not None:
                future.set_exception(job.error)
            else:
                future.set_result(job.result)
        if head is not None:
            self._on_commit(head)


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
    interpreter lock (up to the 5 ms switch interval on a busy loop) while the batch holds the database's write
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


class ThreadWriter(GroupCommitWriter):
    """Writes on a thread of its own: while one batch commits, the next one queues up; jobs submitted during
    one turn of the event loop are handed over together, and the thread is woken once per batch."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], **options: Any) -> None:
        super().__init__(connect, **options)
        self._queue: queue.SimpleQueue[list[WriteJob]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer thread; jobs' futures resolve on ``loop``.

        Raises:
            StoreError: the writer's connection could not be opened.
        """
        self._loop = loop
        self._thread = threading.Thread(target=self._main, name="citadel-sqlite-writer", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise StoreError(f"cannot open the SQLite writer: {self._start_error}") from self._start_error
        self._checkpointer = Checkpointer(self._connect, passive=False)  # to scrub: SQLite checkpoints passively
        self._checkpointer.start()

    def submit(self, job: WriteJob) -> asyncio.Future[Any]:
        """Queue a job; the returned future resolves with its result after its transaction commits."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            raise StoreError("the event store is not open; call `await store.open()` first")
        job.future = self._loop.create_future()
        if not self._pending:
            self._loop.call_soon(self._hand_over)
        self._pending.append(job)
        return job.future

    def _hand_over(self) -> None:
        jobs, self._pending = self._pending, []
        self._queue.put(jobs)

    async def close(self) -> None:
        """Write the queued jobs and stop the thread."""
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        """Finish queued jobs and stop the thread (blocks until it has)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put([_Stop()])
            self._thread.join()
        self._thread = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

    def _main(self) -> None:
        try:
            db = self._connect()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        tx = self._new_transaction(db)
        self._started.set()
        try:
            while True:
                jobs = self._take()
                stop = isinstance(jobs[-1], _Stop)
                if stop:
                    jobs.pop()
                if not self._group_commit:
                    for job in jobs:
                        self._run_batch(tx, [job])
                elif jobs:
                    self._run_batch(tx, jobs)
                if stop:
                    return
        finally:
            db.close()

    def _take(self) -> list[WriteJob]:
        jobs = self._queue.get()
        get = self._queue.get_nowait
        while len(jobs) < self._max_batch and not isinstance(jobs[-1], _Stop):
            try:
                jobs.extend(get())
            except queue.Empty:
                break
        return jobs

    def _deliver(self, jobs: list[WriteJob], head: int | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed while we committed
            loop.call_soon_threadsafe(self._resolve, jobs, head)
