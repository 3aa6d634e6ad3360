"""The embedded SQLite event store: WAL mode, group commit, views in the same file.

Writes go through one writer connection (see ``sqlite_writer``: on the event loop by default); reads use a
separate connection on the event loop's thread, which WAL lets proceed while the writer commits. Positions are
assigned by the writer under SQLite's write lock, so they become visible strictly in order and a subscriber can
never skip one. Several processes may share one file: SQLite's lock serialises their batches (waited for up to
``busy_timeout``) and subscribers notice other processes' commits by polling the head position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from citadel.errors import ConfigurationError, StoreError
from citadel.messages import Event, EventRegistry
from citadel.security.encryption import Keyring, MasterKeys
from citadel.security.keyfiles import create_private
from citadel.store.base import (
    AppendResult,
    Commit,
    CommitResult,
    DeadLetter,
    IdempotencyRecord,
    Lease,
    Metadata,
    ProjectionTarget,
    RecordedEvent,
    Snapshot,
    StreamAppend,
)
from citadel.store.encoding import encode_appends, forgotten_keys
from citadel.store.expiry import Pruner, check_ttl
from citadel.store.migrations import check_known, expand
from citadel.store.sealing import Sealer, request_hash
from citadel.store.sqlite_jobs import (
    CallJob,
    CommitJob,
    ProjectionJob,
    acquire_lease,
    renew_lease,
    reset_checkpoint,
    run_handler,
    save_checkpoint,
    select_events,
)
from citadel.store.sqlite_keys import master_key_ids, open_request_key, read_keys, rewrap_keys
from citadel.store.sqlite_records import dead_letters, idempotency_record, load_snapshot, park, prune_idempotency
from citadel.store.sqlite_schema import migrate, split_statements
from citadel.store.sqlite_views import SQLiteViewReader, SQLiteViewWriter, view_ddl
from citadel.store.sqlite_writer import GroupCommitWriter, LoopWriter, ThreadWriter, WriteTransaction
from citadel.store.subscription import follow
from citadel.views import View

__all__ = ["SQLiteEventStore"]

log = logging.getLogger("citadel.store")

_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
_WRITERS = ("loop", "thread")


_PAGE_END = (
    "SELECT max(position) FROM (SELECT position FROM citadel_events WHERE position >= ? ORDER BY position LIMIT ?)"
)
"""The last position of the page of the log that starts at a position (NULL when there is none)."""


class SQLiteEventStore:
    """Event store in one SQLite file.

    Args:
        path: the database file (created with its folder when missing).
        registry: the event types this store encodes and decodes.
        synchronous: SQLite's durability mode; ``FULL`` (default) fsyncs every commit.
        group_commit: batch concurrent writes into one transaction (default); False commits each alone.
        writer: where batches are written: ``loop`` (default), on the event loop between its turns, with no
            thread to hand work and the interpreter lock to; ``thread``, on a writer thread of its own.
        poll_interval: how often live subscribers look for commits made by other processes, in seconds.
        busy_timeout: how long a write waits for another process's lock, in seconds.
        idempotency_ttl: seconds an idempotency record is kept (``citadel.store.expiry``).
    """

    def __init__(
        self,
        path: str | Path,
        registry: EventRegistry,
        *,
        synchronous: str = "FULL",
        group_commit: bool = True,
        writer: str = "loop",
        poll_interval: float = 0.25,
        busy_timeout: float = 30.0,
        keyring: Keyring | None = None,
        idempotency_ttl: float = 86400.0,
    ) -> None:
        if synchronous.upper() not in _SYNC_MODES:
            raise ConfigurationError(f"synchronous must be one of {', '.join(_SYNC_MODES)}, got {synchronous!r}")
        if writer not in _WRITERS:
            raise ConfigurationError(f"writer must be one of {', '.join(_WRITERS)}, got {writer!r}")
        if str(path) == ":memory:" or str(path).startswith("file::memory:"):
            raise ConfigurationError(
                "an in-memory SQLite database cannot be shared by the writer and readers; give a file path"
            )
        self.path = Path(path)
        self.registry = registry
        self._sealer = Sealer(keyring) if keyring is not None else None
        self.idempotency_ttl = check_ttl(idempotency_ttl)
        self._pruner = Pruner(self._prune)
        self._forgotten_generation = -1
        self._forgotten_checked = 0.0
        self.synchronous = synchronous.upper()
        self.poll_interval = poll_interval
        self._busy_ms = int(busy_timeout * 1000)
        self._reader: sqlite3.Connection | None = None
        self._inline: list[ProjectionTarget] = []
        self._inline_by_type: dict[str, list[ProjectionTarget]] = {}
        self._view_writers: dict[int, SQLiteViewWriter] = {}
        self._view_readers: dict[int, SQLiteViewReader] = {}
        self._head = 0
        self._changed = asyncio.Event()
        writer_class: type[GroupCommitWriter] = LoopWriter if writer == "loop" else ThreadWriter
        self._writer = writer_class(
            self._connect, writers=self._writer_for, on_commit=self._on_commit, group_commit=group_commit
        )

    @property
    def writer(self) -> GroupCommitWriter:
        """The group-commit writer (its ``transactions`` and ``jobs`` counters show batching)."""
        return self._writer

    # -- lifecycle -------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        # Switching a new file to WAL needs an exclusive lock that the busy handler does not wait for, so two
        # processes creating the file at once would fail: retry for as long as the busy timeout allows.
        deadline = time.monotonic() + self._busy_ms / 1000
        while True:
            try:
                db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    db.close()
                    raise
                time.sleep(0.01)
        db.execute(f"PRAGMA synchronous = {self.synchronous}")
        db.execute("PRAGMA temp_store = MEMORY")
        # With encryption, deleted or overwritten rows (a forgotten person's views) are zeroed on disk, freed pages
        # too, so a forgotten subject's plaintext does not linger in free space (the log is scrubbed after the
        # commit that forgets, see ``sqlite_checkpoint``). Without it nothing is promised of deleted bytes, and
        # zeroing every overwritten row (some builds default to it) costs every view update a memset.
        db.execute(f"PRAGMA secure_delete = {'ON' if self._sealer is not None else 'OFF'}")
        db.execute("PRAGMA cache_size = -16000")
        return db

    async def open(self) -> None:
        """Create the file and schema if needed, migrate it, and start the writer.

        Raises:
            StoreError: the file cannot be opened or is not a Citadel database.
        """
        try:
            create_private(self.path, "")  # a file made here is its owner's alone (0600, a new folder 0700)
            self._reader = self._connect()
            migrate(self._reader)
            self._head = self._read_head()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite store at {self.path}: {exc}") from exc
        if self._sealer is not None:
            try:  # a master key that changed would leave every stored payload unreadable: refuse now
                self._sealer.keyring.master.require(master_key_ids(self._reader))
                open_request_key(self._reader, self._sealer)
            except (ConfigurationError, sqlite3.Error) as exc:
                self._reader.close()
                self._reader = None
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot open SQLite store at {self.path}: {exc}") from exc
                raise
        self._changed = asyncio.Event()
        self._writer.start(asyncio.get_running_loop())
        self._pruner.start()

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close connections."""
        await self._pruner.stop()
        await self._writer.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._wake()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._reader is None:
            raise StoreError("the event store is not open; call `await store.open()` first")
        return self._reader

    # -- writing ---------------------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[Event],
        expected_version: int | None = None,
        metadata: Metadata | None = None,
    ) -> AppendResult:
        """Append events to one stream (see ``EventStore.append``)."""
        result = await self.commit(Commit((StreamAppend(stream_id, events, expected_version),), metadata or Metadata()))
        return result.appends[0]

    async def commit(self, commit: Commit) -> CommitResult:
        """Write a commit atomically, batched with concurrent ones (see ``EventStore.commit``)."""
        sealer = self._sealer
        appends = encode_appends(commit, self.registry, keyed=sealer is not None)
        forget = forgotten_keys(commit, encrypting=sealer is not None) if commit.forget else ()
        job = CommitJob(
            appends,
            commit.metadata,
            commit.idempotency,
            commit.snapshots,
            self._inline_for,
            self.registry,
            sealer,
            forget,
            self.idempotency_ttl,
        )
        result: CommitResult = await self._writer.submit(job)
        if forget and sealer is not None:
            sealer.keyring.mark_forgotten(forget)
            # The log's older frames still hold what the commit overwrote (the subject's views): empty it.
            if not await self._writer.scrub(self._busy_ms / 1000):
                log.warning("the write-ahead log still holds forgotten data: emptying it is tried again")
        return result

    def _open(self, records: list[RecordedEvent], db: sqlite3.Connection | None = None) -> list[RecordedEvent]:
        """Open sealed payloads (reading the keys not known yet); a no-op without encryption."""
        sealer = self._sealer
        if sealer is None or not records:
            return records
        connection = db if db is not None else self._db
        self._notice_forgotten(connection)
        missing = sealer.missing(sealer.sealed_keys(r.data for r in records))
        if missing:
            sealer.learn(read_keys(connection, missing))
        sealer.open_records(records)
        return records

    def _notice_forgotten(self, db: sqlite3.Connection) -> None:
        """Drop every opened key when another process has forgotten keys (checked at most every 0.2 s)."""
        if self._sealer is None:
            return
        now = time.monotonic()
        if now - self._forgotten_checked < 0.2:
            return
        self._forgotten_checked = now
        generation = db.execute("SELECT value FROM citadel_meta WHERE name = 'forgotten_keys'").fetchone()[0]
        if generation != self._forgotten_generation:
            if self._forgotten_generation >= 0:
                self._sealer.keyring.clear()
            self._forgotten_generation = generation

    def _inline_for(self, type_name: str) -> Sequence[ProjectionTarget]:
        return self._inline_by_type.get(type_name, ())

    def _writer_for(self, db: sqlite3.Connection, view: View[Any]) -> SQLiteViewWriter:
        writer = self._view_writers.get(id(view))
        if writer is None:
            writer = self._view_writers[id(view)] = SQLiteViewWriter(view, db)
        return writer

    def _on_commit(self, head: int) -> None:
        if head > self._head:
            self._head = head
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- reading ---------------------------------------------------------------------------------------

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """Return a stream's events from ``from_version`` on, in version order."""
        return self._open(
            select_events(
                self._db,
                "WHERE stream_id = ? AND version >= ? ORDER BY version",
                (stream_id, from_version),
                self.registry,
            )
        )

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[RecordedEvent]:
        """Return up to ``limit`` events at ``from_position`` or later, in position order."""
        return self._open(
            select_events(
                self._db, "WHERE position >= ? ORDER BY position LIMIT ?", (from_position, limit), self.registry
            )
        )

    async def read_all_of(
        self, types: Collection[str], from_position: int = 1, limit: int = 1000
    ) -> tuple[list[RecordedEvent], int]:
        """Of the next ``limit`` events at ``from_position`` or later, return those of ``types``, and the position
        read up to (filtered in SQL: the others are neither read nor decrypted).

        Positions only grow with commits, so no event can appear later below the bound read here.
        """
        db = self._db
        head = self._head
        if head >= from_position:
            # Positions have no gaps (a commit takes the ones after the head) and every position up to the head
            # this process has seen is committed: the page's end needs no query.
            upper = min(head, from_position + limit - 1)
        else:  # past what this process has seen: another process may have written more
            upper = db.execute(_PAGE_END, (from_position, limit)).fetchone()[0]
            if upper is None:
                return [], from_position - 1
        wanted = tuple(types)
        if not wanted:
            return [], int(upper)
        marks = ", ".join("?" * len(wanted))
        where = f"WHERE position BETWEEN ? AND ? AND type IN ({marks}) ORDER BY position"
        return self._open(select_events(db, where, (from_position, upper, *wanted), self.registry)), int(upper)

    def subscribe(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Yield every event from ``from_position`` on, then new ones as they commit."""
        return follow(self, from_position)

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's version (0 when it has no events)."""
        row = self._db.execute(
            "SELECT coalesce(max(version), 0) FROM citadel_events WHERE stream_id = ?", (stream_id,)
        ).fetchone()
        return int(row[0])

    def _read_head(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(position), 0) FROM citadel_events").fetchone()[0])

    async def head_position(self) -> int:
        """Return the last committed position, including commits of other processes."""
        head = self._read_head()
        if head > self._head:
            self._on_commit(head)
        return head

    async def last_position(self) -> int:
        """Return the highest committed position (on SQLite, readable at once: the same as the head)."""
        return await self.head_position()

    async def wait_for_events(self, after: int, timeout: float) -> int:
        """Wait until the head passes ``after`` (or ``timeout``); return the head."""
        if self._head > after:
            return self._head
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout, self.poll_interval)):
                await changed.wait()
        if self._head > after or self._reader is None:
            return self._head
        return await self.head_position()  # another process may have written

    def request_hash(self, material: bytes) -> str:
        """Return what an idempotency record stores to recognise a command (see ``EventStore.request_hash``)."""
        return request_hash(self._sealer, material)

    async def idempotency_record(self, key: str) -> IdempotencyRecord | None:
        """Return the unexpired outcome for an idempotency key (``forgotten`` when its key is gone), or None."""
        self._notice_forgotten(self._db)
        return idempotency_record(self._db, self._sealer, key, time.time() - self.idempotency_ttl)

    async def prune_idempotency(self) -> int:
        """Delete expired idempotency records, ``Pruner.batch`` per transaction; return how many."""
        return await self._pruner.prune()

    async def _prune(self, limit: int) -> int:
        before = time.time() - self.idempotency_ttl
        deleted: int = await self._writer.submit(CallJob(lambda tx: prune_idempotency(tx, before, limit)))
        return deleted

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """Return the stream's snapshot (None when there is none, or its key is gone)."""
        self._notice_forgotten(self._db)
        return load_snapshot(self._db, self._sealer, stream_id)

    # -- views and projections -------------------------------------------------------------------------

    def add_inline_projection(self, projection: ProjectionTarget) -> None:
        """Run ``projection`` in every commit that appends an event it handles."""
        self._inline.append(projection)
        for info in self.registry:
            if projection.handles(info.name):
                self._inline_by_type.setdefault(info.name, []).append(projection)

    async def ensure_views(self, views: Sequence[View[Any]]) -> None:
        """Create the tables and indexes of ``views`` (idempotent)."""

        def create(tx: WriteTransaction) -> None:
            for view in views:
                for statement in view_ddl(view):
                    tx.db.execute(statement)

        await self._writer.submit(CallJob(create))

    async def migrate_module(self, module: str, steps: Sequence[str]) -> int:
        """Run ``module``'s pending migration steps, each in a transaction with its version."""

        def migrate_steps(tx: WriteTransaction) -> int:
            row = tx.db.execute("SELECT version FROM citadel_module_migrations WHERE module = ?", (module,)).fetchone()
            done = 0 if row is None else int(row[0])
            check_known(module, done, len(steps))
            for version in range(done + 1, len(steps) + 1):
                tx.db.execute("SAVEPOINT step")
                try:
                    for statement in split_statements(expand(steps[version - 1], lambda name: f'"{module}__{name}"')):
                        tx.db.execute(statement)
                    tx.db.execute(
                        "INSERT INTO citadel_module_migrations (module, version) VALUES (?, ?) "
                        "ON CONFLICT (module) DO UPDATE SET version = excluded.version",
                        (module, version),
                    )
                except BaseException:
                    tx.db.execute("ROLLBACK TO step")
                    tx.db.execute("RELEASE step")
                    raise
                tx.db.execute("RELEASE step")
            return len(steps)

        result: int = await self._writer.submit(CallJob(migrate_steps))
        return result

    def view_reader(self, view: View[Any]) -> SQLiteViewReader:
        """Return read access to a view's committed documents."""
        reader = self._view_readers.get(id(view))
        if reader is None:
            reader = self._view_readers[id(view)] = SQLiteViewReader(view, self._db)
        return reader

    async def checkpoint(self, name: str) -> int | None:
        """Return consumer ``name``'s last processed position, or None when it has no checkpoint."""
        row = self._db.execute("SELECT position FROM citadel_checkpoints WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    async def apply_projection(
        self,
        projection: ProjectionTarget,
        records: Sequence[RecordedEvent],
        position: int,
        lease: Lease | None = None,
    ) -> None:
        """Apply events and set the checkpoint in one transaction (fenced by ``lease``)."""
        await self._writer.submit(ProjectionJob(projection, records, position, lease))

    async def save_checkpoint(self, name: str, position: int, lease: Lease | None = None) -> None:
        """Set consumer ``name``'s checkpoint (fenced by ``lease``)."""

        def save(tx: WriteTransaction) -> None:
            if lease is not None:
                renew_lease(tx, lease)
            save_checkpoint(tx, name, position)

        await self._writer.submit(CallJob(save))

    async def rewind_checkpoint(self, name: str, position: int = 0) -> None:
        """Move a consumer's checkpoint back and drop its lease, so the next holder replays from there."""
        await self._writer.submit(CallJob(lambda tx: reset_checkpoint(tx, name, position)))

    async def rewrap_keys(self, master: MasterKeys) -> int:
        """Re-wrap every data key with the current master key, in one transaction."""
        result: int = await self._writer.submit(CallJob(lambda tx: rewrap_keys(tx.db, master)))
        return result

    async def master_key_ids(self) -> set[str]:
        """The ids of the master keys that wrap the stored data keys."""
        return master_key_ids(self._db)

    async def acquire_lease(self, lease: Lease) -> bool:
        """Take or renew a lease; False while another owner holds it."""
        held: bool = await self._writer.submit(CallJob(lambda tx: acquire_lease(tx, lease)))
        return held

    async def release_lease(self, lease: Lease) -> None:
        """Give a lease up so another process can take over at once."""

        def release(tx: WriteTransaction) -> None:
            tx.db.execute("DELETE FROM citadel_leases WHERE name = ? AND owner = ?", (lease.name, lease.owner))

        await self._writer.submit(CallJob(release))

    async def reset_projection(self, projection: ProjectionTarget) -> int:
        """Empty the projection's views, zero its checkpoint and drop its lease; return the head then."""

        def reset(tx: WriteTransaction) -> int:
            for view in projection.views:
                self._writer_for(tx.db, view).clear()
            reset_checkpoint(tx, projection.name)
            return tx.head

        result: int = await self._writer.submit(CallJob(reset))
        return result

    async def rebuild_inline(
        self, projection: ProjectionTarget, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Empty and replay an inline projection in one transaction (no commit can interleave)."""
        loop = asyncio.get_running_loop()

        def rebuild(tx: WriteTransaction) -> int:
            for view in projection.views:
                self._writer_for(tx.db, view).clear()
            position, target = 0, tx.head
            while position < target:
                records = self._open(
                    select_events(tx.db, "WHERE position > ? ORDER BY position LIMIT 1000", (position,), self.registry),
                    tx.db,
                )
                if not records:
                    break
                for record in records:
                    if projection.handles(record.type):
                        run_handler(projection.apply(record, tx))
                position = records[-1].position
                if progress is not None:
                    loop.call_soon_threadsafe(progress, position, target)
            return position

        result: int = await self._writer.submit(CallJob(rebuild))
        return result

    async def add_dead_letter(self, consumer: str, record: RecordedEvent, error: str, attempts: int) -> None:
        """Park an event a consumer gave up on (its error text sealed, see ``citadel.store.dead_letters``)."""
        await self._writer.submit(CallJob(lambda tx: park(tx, self._sealer, consumer, record, error, attempts)))

    async def resolve_dead_letter(
        self, letter_id: int, projection: ProjectionTarget | None = None, record: RecordedEvent | None = None
    ) -> bool:
        """Delete a dead letter, applying its event to ``projection`` in the same transaction when given."""

        def resolve(tx: WriteTransaction) -> bool:
            if tx.db.execute("DELETE FROM citadel_dead_letters WHERE id = ?", (letter_id,)).rowcount == 0:
                return False
            if projection is not None and record is not None and projection.handles(record.type):
                run_handler(projection.apply(record, tx))
            return True

        resolved: bool = await self._writer.submit(CallJob(resolve))
        return resolved

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """Return parked events, oldest first."""
        self._notice_forgotten(self._db)
        return dead_letters(self._db, self._sealer, consumer)
