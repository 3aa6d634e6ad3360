"""The memory store's module migrations (``Migrations``): modules' steps are SQL, so they run in an in-memory
SQLite database of the memory database's own, each in a transaction with the module's recorded version, its
``{table:name}`` placeholders standing for ``"<module>__<name>"`` as on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from citadel.errors import StoreError
from citadel.store.memory.base import MemoryBase
from citadel.store.migrations import check_known, expand
from citadel.store.sqlite.schema import split_statements

__all__ = ["MemoryMigrations"]


class MemoryMigrations(MemoryBase):
    """Module migrations of ``MemoryEventStore``."""

    async def migrate_module(self, module: str, steps: Sequence[str]) -> int:
        """Run ``module``'s pending migration steps, each in a transaction with its version.

        Raises:
            StoreError: a step fails (nothing of it stays), or the database records more steps than given.
        """
        db = self._db
        done = db.module_versions.get(module, 0)
        check_known(module, done, len(steps))
        connection = db.modules()
        for version in range(done + 1, len(steps) + 1):
            statements = split_statements(expand(steps[version - 1], lambda name: f'"{module}__{name}"'))
            connection.execute("BEGIN")
            try:
                for statement in statements:
                    connection.execute(statement)
            except sqlite3.Error as exc:
                connection.execute("ROLLBACK")
                raise StoreError(f"migration step {version} of module {module!r} failed: {exc}") from exc
            connection.execute("COMMIT")
            db.module_versions[module] = version
        return len(steps)
