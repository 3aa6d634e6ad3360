"""The migrations' conformance (``Migrations``): modules' steps run once each, in order, atomically with the
module's recorded version; a database ahead of the code is refused."""

from __future__ import annotations

import pytest

from citadel.errors import StoreError
from citadel.store.base import EventStore
from citadel.testing.store_suite.harness import StoreHarness

__all__ = ["MigrationsSuite"]

STEPS = [
    "CREATE TABLE {table:notes} (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",
    "INSERT INTO {table:notes} (id, text) VALUES (1, 'written by step 2')",
]


class MigrationsSuite(StoreHarness):
    """Modules' own schema migrations."""

    async def test_pending_steps_run_in_order_and_each_only_once(self, store: EventStore) -> None:
        assert await store.migrate_module("suite", STEPS[:1]) == 1
        assert await store.migrate_module("suite", STEPS[:1]) == 1  # step 1 is not run again: it would fail
        assert await store.migrate_module("suite", STEPS) == 2

    async def test_a_database_migrated_by_newer_code_refuses_older_code(self, store: EventStore) -> None:
        await store.migrate_module("suite", STEPS)
        with pytest.raises(StoreError, match="deploy the newer code"):
            await store.migrate_module("suite", STEPS[:1])

    async def test_a_failing_step_leaves_the_recorded_version_where_it_was(self, store: EventStore) -> None:
        with pytest.raises(Exception, match="missing"):
            await store.migrate_module("suite", [STEPS[0], "INSERT INTO {table:missing} VALUES (1)"])
        assert await store.migrate_module("suite", STEPS) == 2  # step 1 stayed done, step 2 runs now
