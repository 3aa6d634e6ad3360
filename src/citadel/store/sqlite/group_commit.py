"""The group-commit writer's batch logic, shared by where batches run (``loop_writer``,
``thread_writer``).

``GroupCommitWriter`` runs a batch of jobs in one transaction: each job without a savepoint first, and if one
fails after writing, the batch again with a savepoint per job so that it fails alone. Then it commits once and
resolves the jobs' futures on the event loop. See ``writer`` for the overview.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from citadel.errors import LeaseLost, StoreError
from citadel.metrics import metrics
from citadel.store.sqlite.transaction import WriteJob, WriteTransaction
from citadel.store.sqlite.wal import Checkpointer
from citadel.tracing import enabled, end_batch, in_span, start_batch

__all__ = ["GroupCommitWriter"]


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
        recorded = metrics()
        self._appended, self._sizes, self._seconds = (
            recorded.events_appended,
            recorded.commit_batch_size,
            recorded.commit_duration,
        )
        self._batch_head = 0  # the log's head when the batch's transaction began
        self._batch_began = 0.0
        self._span: Any = None  # the batch's ``commit`` span while tracing: ended once the batch is settled

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
        """Copy the write-ahead log back and empty it (see ``wal``), waiting up to ``timeout``
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
            if enabled():
                self._span = start_batch(len(jobs), [job.link for job in jobs if job.link is not None], "sqlite")
                with in_span(self._span):  # the inline projections' spans are its children
                    self._run_jobs(tx, jobs, begun=begun)
            else:
                self._run_jobs(tx, jobs, begun=begun)
        except BaseException as exc:
            self._abort(tx, jobs, head, exc)
            return False
        if tx.db.in_transaction:
            return True
        tx.rolled_back()
        self._done(tx, jobs, committed=False)
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
        self._settled(exc)
        self._fail(jobs, exc)

    def _done(self, tx: WriteTransaction, jobs: list[WriteJob], *, committed: bool = True) -> None:
        """The batch committed (or, not ``committed``, its only job failed and rolled it back): resolve the jobs."""
        tx.committed()
        self._settled()
        self.transactions += 1
        self.jobs += len(jobs)
        if committed:
            self._sizes.observe(len(jobs))
            self._seconds.observe(time.perf_counter() - self._batch_began)
            if tx.head > self._batch_head:
                self._appended.inc(tx.head - self._batch_head)
        self._deliver(jobs, tx.head)

    def _settled(self, error: BaseException | None = None) -> None:
        """End the batch's span, if it has one (``error``: the batch failed with it)."""
        if self._span is not None:
            span, self._span = self._span, None
            end_batch(span, error)

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
        self._batch_head = tx.head
        if not careful:
            self._batch_began = time.perf_counter()
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
