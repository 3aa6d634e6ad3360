"""The migration port: modules' own versioned schema steps, run once each, in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Migrations"]


class Migrations(Protocol):
    """Modules' schema migrations."""

    async def migrate_module(self, module: str, steps: Sequence[str]) -> int:
        """Run ``module``'s pending migration steps in order, each atomically with the module's recorded
        version (a failing step leaves nothing of itself); return that version. ``{table:name}`` in a step is
        the module's table ``name``: ``"<module>"."<name>"`` in PostgreSQL, ``"<module>__<name>"`` in SQLite.

        Raises:
            StoreError: the database records more steps than given (the code is older than the data).
        """
