"""The projection side of the PostgreSQL event store: inline projections, views, checkpoints, leases, dead letters.

Every write here runs in a transaction of its own on a pooled connection (``_transaction``): a projection's
changes to its views commit in one transaction with its checkpoint, fenced by its lease when it has one (the
lease is renewed, by the database's clock, in that transaction, and ``LeaseLost`` aborts it when its owner no
longer holds it). ``PostgresProjections`` builds on ``PostgresReads`` (``postgres_reads``), and
``PostgresEventStore`` (``citadel.store.postgres``) on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from citadel.errors import LeaseLost, StoreError
from citadel.store.base import Lease, ProjectionTarget, RecordedEvent
from citadel.store.postgres_keys import read_keys
from citadel.store.postgres_reads import REPLAY, PostgresReads
from citadel.store.postgres_records import park
from citadel.store.postgres_views import ViewBuffer, apply_handler, view_ddl
from citadel.store.postgres_writer import BROKEN
from citadel.views import View

__all__ = ["PostgresProjections"]


class PostgresProjections(PostgresReads):
    """Projection writes of ``PostgresEventStore``, each in a transaction of its own. The attributes below are
    set by ``PostgresEventStore.__init__``."""

    _inline_by_type: dict[str, list[ProjectionTarget]]

    async def _transaction(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` in its own transaction, translating driver errors."""
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                return await work(connection)
        except BROKEN as exc:
            raise StoreError(f"PostgreSQL write failed: {exc}") from exc

    def _inline_for(self, type_name: str) -> Sequence[ProjectionTarget]:
        return self._inline_by_type.get(type_name, ())

    def add_inline_projection(self, projection: ProjectionTarget) -> None:
        """Run ``projection`` in every commit that appends an event it handles."""
        for info in self.registry:
            if projection.handles(info.name):
                self._inline_by_type.setdefault(info.name, []).append(projection)

    async def ensure_views(self, views: Sequence[View[Any]]) -> None:
        """Create the schemas, tables and indexes of ``views`` (idempotent, safe for concurrent nodes)."""

        async def create(connection: Any) -> None:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", 0x43495442)
            for view in views:
                for statement in view_ddl(view):
                    await connection.execute(statement)

        await self._transaction(create)

    async def apply_projection(
        self,
        projection: ProjectionTarget,
        records: Sequence[RecordedEvent],
        position: int,
        lease: Lease | None = None,
    ) -> None:
        """Apply events and move the checkpoint in one transaction (fenced by ``lease``)."""

        async def apply(connection: Any) -> None:
            if lease is not None:
                await _renew(connection, lease)
            buffer = ViewBuffer(connection)
            for record in records:
                if projection.handles(record.type):
                    await apply_handler(projection.apply(record, buffer))
            await buffer.flush()
            await _save_checkpoint(connection, projection.name, position)

        await self._transaction(apply)

    async def save_checkpoint(self, name: str, position: int, lease: Lease | None = None) -> None:
        """Move a consumer's checkpoint forward (fenced by ``lease``)."""

        async def save(connection: Any) -> None:
            if lease is not None:
                await _renew(connection, lease)
            await _save_checkpoint(connection, name, position)

        await self._transaction(save)

    async def rewind_checkpoint(self, name: str, position: int = 0) -> None:
        """Move a consumer's checkpoint back and drop its lease, so the next holder replays from there."""
        await self._transaction(lambda connection: _reset_checkpoint(connection, name, position))

    async def reset_projection(self, projection: ProjectionTarget) -> int:
        """Empty the projection's views, zero its checkpoint and drop its lease; return the head then."""

        async def reset(connection: Any) -> int:
            buffer = ViewBuffer(connection)
            for view in projection.views:
                buffer.writer(view).clear()
            await buffer.flush()
            await _reset_checkpoint(connection, projection.name, 0)
            return int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM citadel.events"))

        result: int = await self._transaction(reset)
        return result

    async def rebuild_inline(
        self, projection: ProjectionTarget, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Empty and replay an inline projection in one transaction that excludes concurrent commits."""

        async def rebuild(connection: Any) -> int:
            # Writers append with row locks only; a share lock on the log makes them wait for the rebuild.
            await connection.execute("LOCK TABLE citadel.events IN SHARE MODE")
            buffer = ViewBuffer(connection)
            for view in projection.views:
                buffer.writer(view).clear()
            target = int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM citadel.events"))
            position = 0
            while position < target:
                rows = await connection.fetch(REPLAY, position)
                if not rows:
                    break
                records = self._records(rows)
                if self._sealer is not None:
                    missing = self._sealer.missing(self._sealer.sealed_keys(r.data for r in records))
                    self._sealer.learn(await read_keys(connection, missing))
                    self._sealer.open_records(records)
                for record in records:
                    if projection.handles(record.type):
                        await apply_handler(projection.apply(record, buffer))
                await buffer.flush()
                position = rows[-1][0]
                if progress is not None:
                    progress(position, target)
            return position

        result: int = await self._transaction(rebuild)
        return result

    async def add_dead_letter(self, consumer: str, record: RecordedEvent, error: str, attempts: int) -> None:
        """Park an event a consumer gave up on (its error text sealed, see ``citadel.store.dead_letters``)."""
        await self._transaction(lambda c: park(c, self._sealer, consumer, record, error, attempts))

    async def resolve_dead_letter(
        self, letter_id: int, projection: ProjectionTarget | None = None, record: RecordedEvent | None = None
    ) -> bool:
        """Delete a dead letter, applying its event to ``projection`` in the same transaction when given."""

        async def resolve(connection: Any) -> bool:
            deleted = await connection.execute("DELETE FROM citadel.dead_letters WHERE id = $1", letter_id)
            if deleted.endswith(" 0"):
                return False
            if projection is not None and record is not None and projection.handles(record.type):
                buffer = ViewBuffer(connection)
                await apply_handler(projection.apply(record, buffer))
                await buffer.flush()
            return True

        resolved: bool = await self._transaction(resolve)
        return resolved

    async def acquire_lease(self, lease: Lease) -> bool:
        """Take or renew a lease (by the database's clock); False while another owner holds it."""

        async def acquire(connection: Any) -> bool:
            owner = await connection.fetchval(
                "INSERT INTO citadel.leases (name, owner, expires_at) "
                "VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
                "WHERE citadel.leases.owner = excluded.owner OR citadel.leases.expires_at < clock_timestamp() "
                "RETURNING owner",
                lease.name,
                lease.owner,
                lease.ttl,
            )
            return owner is not None

        held: bool = await self._transaction(acquire)
        return held

    async def release_lease(self, lease: Lease) -> None:
        """Give a lease up so another process can take over at once."""
        await self._transaction(
            lambda connection: connection.execute(
                "DELETE FROM citadel.leases WHERE name = $1 AND owner = $2", lease.name, lease.owner
            )
        )


async def _renew(connection: Any, lease: Lease) -> None:
    held = await connection.fetchval(
        "UPDATE citadel.leases SET expires_at = clock_timestamp() + make_interval(secs => $3) "
        "WHERE name = $1 AND owner = $2 RETURNING 1",
        lease.name,
        lease.owner,
        lease.ttl,
    )
    if held is None:
        raise LeaseLost(lease.name)


async def _save_checkpoint(connection: Any, name: str, position: int) -> None:
    await connection.execute(
        "INSERT INTO citadel.checkpoints (name, position) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE "
        "SET position = excluded.position WHERE excluded.position > citadel.checkpoints.position",
        name,
        position,
    )


async def _reset_checkpoint(connection: Any, name: str, position: int) -> None:
    await connection.execute(
        "INSERT INTO citadel.checkpoints (name, position) VALUES ($1, $2) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        name,
        position,
    )
    await connection.execute("DELETE FROM citadel.leases WHERE name = $1", name)
