"""What the SQLite group-commit writer runs: the batch's ``WriteTransaction`` and the ``WriteJob`` contract.

A batch of jobs shares one transaction on the writer's connection; ``WriteTransaction`` carries its state
(connection, head position, clock, cached stream versions, view writers) and ``WriteJob`` is the unit of work
every kind of write subclasses (``jobs``). The writers that run batches are in ``writer``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any, ClassVar

from opentelemetry.trace import Link

from citadel.tracing import current_link

__all__ = ["WriteJob", "WriteTransaction"]

_VERSION = "SELECT coalesce(max(version), 0) FROM citadel_events WHERE stream_id = ?"
_VERSION_CACHE = 100_000


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

    __slots__ = ("error", "future", "link", "result", "writing")

    tracks_writes: ClassVar[bool] = False
    """True for jobs that set ``writing`` when they begin to write (others are assumed to have written)."""

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.writing = False
        self.link: Link | None = current_link()  # the span it was submitted in, for its batch's span

    def needs_savepoint(self) -> bool:
        """Whether ``run`` may fail after writing (asked by the writer, just before ``run``)."""
        return True

    def prepare(self, tx: WriteTransaction) -> None:
        """Write what every job of the batch may share, before any job runs (outside their savepoints)."""

    def run(self, tx: WriteTransaction) -> Any:
        """Do the job's writes inside the current transaction and return its result."""
        raise NotImplementedError
