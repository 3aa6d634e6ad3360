"""The PostgreSQL store's checkpoints and leases (``Checkpoints``).

A projection's changes to its views commit in one transaction with its checkpoint, fenced by its lease when it has
one (the lease is renewed, by the database's clock, in that transaction, and ``LeaseLost`` aborts it when its owner
no longer holds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from citadel.errors import LeaseLost
from citadel.store.postgres.base import PostgresBase
from citadel.store.postgres.view_tables import ViewBuffer, apply_handler
from citadel.store.records import Lease, RecordedEvent
from citadel.store.targets import ProjectionTarget

__all__ = ["PostgresCheckpoints"]


class PostgresCheckpoints(PostgresBase):
    """Checkpoints and leases of ``PostgresEventStore``."""

    async def checkpoint(self, name: str) -> int | None:
        """Return consumer ``name``'s last processed position, or None."""
        rows = await self._fetch("SELECT position FROM citadel.checkpoints WHERE name = $1", name)
        return int(rows[0][0]) if rows else None

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
