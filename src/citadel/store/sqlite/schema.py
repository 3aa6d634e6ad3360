"""The SQLite store's own tables, created and migrated in order, recorded in ``citadel_schema``.

Each migration runs once, in one transaction with the version bump, so a crash mid-migration leaves the
previous version intact. Add new steps at the end; never edit a released one.
"""

from __future__ import annotations

import sqlite3

from citadel.errors import StoreError

__all__ = ["MIGRATIONS", "migrate", "split_statements"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE citadel_events (
            position INTEGER PRIMARY KEY,
            stream_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            data BLOB NOT NULL,
            recorded_at REAL NOT NULL,
            correlation_id TEXT,
            causation_id TEXT,
            actor TEXT,
            UNIQUE (stream_id, version)
        )""",
        """CREATE TABLE citadel_checkpoints (
            name TEXT PRIMARY KEY,
            position INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE citadel_idempotency (
            key TEXT PRIMARY KEY,
            request_hash TEXT NOT NULL,
            result BLOB NOT NULL,
            position INTEGER NOT NULL,
            recorded_at REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE citadel_snapshots (
            stream_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            state_version INTEGER NOT NULL,
            data BLOB NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE citadel_dead_letters (
            id INTEGER PRIMARY KEY,
            consumer TEXT NOT NULL,
            position INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            error TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            recorded_at REAL NOT NULL
        )""",
    ),
    (
        """CREATE TABLE citadel_leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at REAL NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        """CREATE TABLE citadel_module_migrations (
            module TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # Data keys, wrapped by a master key; an empty ``wrapped`` is the tombstone of a forgotten subject.
        """CREATE TABLE citadel_keys (
            key_id TEXT PRIMARY KEY,
            master_id TEXT NOT NULL,
            wrapped BLOB NOT NULL,
            created_at REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE citadel_meta (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID""",
        "INSERT INTO citadel_meta (name, value) VALUES ('forgotten_keys', 0)",
    ),
    (
        # Which master keys the data keys need, read at every start (``key_table.master_key_ids``).
        "CREATE INDEX citadel_keys_by_master ON citadel_keys (master_id)",
    ),
    (
        # Expired idempotency records are pruned oldest first (``records.prune_idempotency``).
        "CREATE INDEX citadel_idempotency_by_age ON citadel_idempotency (recorded_at)",
        # A dead letter's error text sealed with its event's data key; ``error`` then keeps the class only.
        "ALTER TABLE citadel_dead_letters ADD COLUMN sealed_error BLOB",
    ),
    (
        # The position of the event whose reaction (a process manager's command) wrote this one; NULL otherwise.
        # Read-your-writes follows reaction chains by it (``citadel.reactions``).
        "ALTER TABLE citadel_events ADD COLUMN causation_position INTEGER",
    ),
    (
        # The W3C traceparent of the command that wrote the event, while tracing is on (``citadel.tracing``).
        "ALTER TABLE citadel_events ADD COLUMN traceparent TEXT",
    ),
)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; return that version.

    Raises:
        StoreError: the file was written by a newer Citadel (its schema version is unknown here).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS citadel_schema (version INTEGER NOT NULL)")
        row = db.execute("SELECT max(version) FROM citadel_schema").fetchone()
        current = row[0] or 0
        if current > len(MIGRATIONS):
            raise StoreError(
                f"the database is at schema version {current}, newer than this Citadel knows "
                f"({len(MIGRATIONS)}); upgrade Citadel"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            for statement in MIGRATIONS[version - 1]:
                db.execute(statement)
            db.execute("INSERT INTO citadel_schema (version) VALUES (?)", (version,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def split_statements(script: str) -> list[str]:
    """Split a module's migration step into statements (sqlite3 runs one at a time)."""
    statements: list[str] = []
    current = ""
    for piece in script.split(";"):
        current += piece
        if sqlite3.complete_statement(current + ";"):
            if current.strip():
                statements.append(current.strip())
            current = ""
        else:
            current += ";"
    if current.strip():
        statements.append(current.strip())
    return statements
