"""The SQLite store's module migrations (``Migrations``): each step in a savepoint with the module's version, its
``{table:name}`` placeholders standing for ``"<module>__<name>"``."""

from __future__ import annotations

from collections.abc import Sequence

from citadel.store.migrations import check_known, expand
from citadel.store.sqlite.base import SQLiteBase
from citadel.store.sqlite.jobs import CallJob
from citadel.store.sqlite.schema import split_statements
from citadel.store.sqlite.transaction import WriteTransaction

__all__ = ["SQLiteMigrations"]


class SQLiteMigrations(SQLiteBase):
    """Module migrations of ``SQLiteEventStore``."""

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
