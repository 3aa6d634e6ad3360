"""The PostgreSQL store's module migrations (``Migrations``): each step in a transaction with the module's version,
under an advisory lock (nodes starting together run each step once), in the module's own schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from citadel.store.migrations import check_known, expand
from citadel.store.postgres.base import PostgresBase

__all__ = ["PostgresMigrations"]


class PostgresMigrations(PostgresBase):
    """Module migrations of ``PostgresEventStore``."""

    async def migrate_module(self, module: str, steps: Sequence[str]) -> int:
        """Run ``module``'s pending migration steps in its schema, each in a transaction with its version."""
        done: int = 0
        for version in range(1, len(steps) + 1):

            async def step(connection: Any, version: int = version) -> int:
                await connection.execute("SELECT pg_advisory_xact_lock($1)", 0x43495443)
                recorded = await connection.fetchval(
                    "SELECT version FROM citadel.module_migrations WHERE module = $1", module
                )
                recorded = recorded or 0
                check_known(module, recorded, len(steps))
                if recorded >= version:
                    return int(recorded)
                await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{module}"')
                await connection.execute(expand(steps[version - 1], lambda name: f'"{module}"."{name}"'))
                await connection.execute(
                    "INSERT INTO citadel.module_migrations (module, version) VALUES ($1, $2) "
                    "ON CONFLICT (module) DO UPDATE SET version = excluded.version",
                    module,
                    version,
                )
                return version

            done = await self._transaction(step)
        if not steps:
            recorded = await self._fetch("SELECT version FROM citadel.module_migrations WHERE module = $1", module)
            check_known(module, int(recorded[0][0]) if recorded else 0, 0)
        return max(done, len(steps))
