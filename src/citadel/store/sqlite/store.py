"""The embedded SQLite event store: WAL mode, group commit, views in the same file.

Writes go through one writer connection (see ``writer``: on the event loop by default); reads use a separate
connection on the event loop's thread, which WAL lets proceed while the writer commits. Positions are assigned by
the writer under SQLite's write lock, so they become visible strictly in order and a subscriber can never skip
one. Several processes may share one file: SQLite's lock serialises their batches (waited for up to
``busy_timeout``) and subscribers notice other processes' commits by polling the head position.

This module holds the store's configuration and the lifecycle of its connections. Each port is implemented in
the module named after it (``event_log``, ``idempotency``, ``snapshots``, ``views``, ``checkpoints``,
``dead_letters``, ``keys``, ``migrations``), all built on ``base``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from citadel.errors import ConfigurationError, StoreError
from citadel.messages import EventRegistry
from citadel.security.encryption import Keyring
from citadel.security.keyfiles import create_private
from citadel.store.expiry import Pruner, check_ttl
from citadel.store.records import RecordedEvent
from citadel.store.sealing import Sealer, refuse_sealed, refuse_unkeyed
from citadel.store.sqlite.checkpoints import SQLiteCheckpoints
from citadel.store.sqlite.dead_letters import SQLiteDeadLetters
from citadel.store.sqlite.event_log import SQLiteEventLog
from citadel.store.sqlite.idempotency import SQLiteIdempotency
from citadel.store.sqlite.key_table import master_key_ids, open_request_key
from citadel.store.sqlite.keys import SQLiteKeys
from citadel.store.sqlite.migrations import SQLiteMigrations
from citadel.store.sqlite.schema import migrate
from citadel.store.sqlite.snapshots import SQLiteSnapshots
from citadel.store.sqlite.view_tables import SQLiteViewReader, SQLiteViewWriter
from citadel.store.sqlite.views import SQLiteViews
from citadel.store.sqlite.writer import GroupCommitWriter, LoopWriter, ThreadWriter
from citadel.store.targets import ProjectionTarget

__all__ = ["SQLiteEventStore"]

_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
_WRITERS = ("loop", "thread")


class SQLiteEventStore(
    SQLiteEventLog,
    SQLiteIdempotency,
    SQLiteSnapshots,
    SQLiteViews,
    SQLiteCheckpoints,
    SQLiteDeadLetters,
    SQLiteKeys,
    SQLiteMigrations,
):
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
        # commit that forgets, see ``wal``). Without it nothing is promised of deleted bytes, and zeroing every
        # overwritten row (some builds default to it) costs every view update a memset.
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
        try:  # a master key that changed (or none at all) would leave every stored payload unreadable: refuse now
            masters = master_key_ids(self._reader)
            if self._sealer is None:
                refuse_unkeyed(masters)
            else:
                self._sealer.keyring.master.require(masters)
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

    def _open(self, records: list[RecordedEvent], db: sqlite3.Connection | None = None) -> list[RecordedEvent]:
        """Open sealed payloads; without a keyring, refuse them (``refuse_sealed``)."""
        if self._sealer is None:
            refuse_sealed(records)
            return records
        return super()._open(records, db)

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close connections."""
        await self._pruner.stop()
        await self._writer.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._wake()
