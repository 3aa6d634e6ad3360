"""The PostgreSQL store's own tables, in schema ``citadel``, created and migrated in order.

Migrations run under a transaction-level advisory lock, so several nodes starting at once migrate once.
Each step runs in one transaction with its version bump. Add new steps at the end; never edit a released one.
"""

from __future__ import annotations

from typing import Any

from citadel.errors import StoreError

__all__ = ["MIGRATIONS", "SCHEMA", "migrate"]

SCHEMA = "citadel"
_LOCK = 0x43495441  # "CITA": the advisory lock key of schema migrations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE citadel.events (
            position BIGINT PRIMARY KEY,
            stream_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            data BYTEA NOT NULL,
            recorded_at DOUBLE PRECISION NOT NULL,
            correlation_id TEXT,
            causation_id TEXT,
            actor TEXT,
            UNIQUE (stream_id, version)
        )""",
        """CREATE TABLE citadel.checkpoints (
            name TEXT PRIMARY KEY,
            position BIGINT NOT NULL
        )""",
        """CREATE TABLE citadel.idempotency (
            key TEXT PRIMARY KEY,
            request_hash TEXT NOT NULL,
            result BYTEA NOT NULL,
            position BIGINT NOT NULL,
            recorded_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE citadel.snapshots (
            stream_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            state_version INTEGER NOT NULL,
            data BYTEA NOT NULL
        )""",
        """CREATE TABLE citadel.dead_letters (
            id BIGSERIAL PRIMARY KEY,
            consumer TEXT NOT NULL,
            position BIGINT NOT NULL,
            event_id TEXT NOT NULL,
            error TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            recorded_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX dead_letters_by_consumer ON citadel.dead_letters (consumer, id)",
        """CREATE TABLE citadel.leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        )""",
        """CREATE TABLE citadel.module_migrations (
            module TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        )""",
    ),
    (
        # Data keys, wrapped by a master key; an empty ``wrapped`` is the tombstone of a forgotten subject.
        """CREATE TABLE citadel.keys (
            key_id TEXT PRIMARY KEY,
            master_id TEXT NOT NULL,
            wrapped BYTEA NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
        )""",
    ),
    (
        # Which master keys the data keys need, read at every start (``key_table.master_key_ids``).
        "CREATE INDEX keys_by_master ON citadel.keys (master_id)",
    ),
    (
        # Expired idempotency records are pruned oldest first (``records.prune_idempotency``).
        "CREATE INDEX idempotency_by_age ON citadel.idempotency (recorded_at)",
        # A dead letter's error text sealed with its event's data key; ``error`` then keeps the class only.
        "ALTER TABLE citadel.dead_letters ADD COLUMN sealed_error BYTEA",
    ),
    (
        # The position of the event whose reaction (a process manager's command) wrote this one; NULL otherwise.
        # Read-your-writes follows reaction chains by it (``citadel.reactions``).
        "ALTER TABLE citadel.events ADD COLUMN causation_position BIGINT",
    ),
    (
        # The W3C traceparent of the command that wrote the event, while tracing is on (``citadel.tracing``).
        "ALTER TABLE citadel.events ADD COLUMN traceparent TEXT",
    ),
)


async def migrate(connection: Any) -> int:
    """Bring schema ``citadel`` to the newest version; return that version.

    Raises:
        StoreError: the database was migrated by a newer Citadel.
    """
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        await connection.execute("CREATE SCHEMA IF NOT EXISTS citadel")
        await connection.execute("CREATE TABLE IF NOT EXISTS citadel.schema_version (version INTEGER NOT NULL)")
        current = await connection.fetchval("SELECT coalesce(max(version), 0) FROM citadel.schema_version")
        if current > len(MIGRATIONS):
            raise StoreError(
                f"the database is at schema version {current}, newer than this Citadel knows "
                f"({len(MIGRATIONS)}); upgrade Citadel"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            for statement in MIGRATIONS[version - 1]:
                await connection.execute(statement)
            await connection.execute("INSERT INTO citadel.schema_version (version) VALUES ($1)", version)
    return len(MIGRATIONS)
