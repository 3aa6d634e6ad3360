"""The conformance suite (``citadel.testing.store_suite``) on every backend of this repository, with the
property tests, and group commit where a backend batches."""

from __future__ import annotations

from citadel.testing.store_suite import StoreSuite
from tests.store.group_commit import GroupCommitSuite
from tests.store.harnesses import MemoryHarness, PostgresHarness, SQLiteHarness, SQLiteThreadHarness
from tests.store.properties import PropertySuite


class TestSQLiteStore(SQLiteHarness, StoreSuite, GroupCommitSuite, PropertySuite):
    """SQLite, batches written on the event loop (the default writer)."""


class TestSQLiteThreadStore(SQLiteThreadHarness, StoreSuite, GroupCommitSuite, PropertySuite):
    """SQLite, batches written on a writer thread."""


class TestPostgresStore(PostgresHarness, StoreSuite, GroupCommitSuite, PropertySuite):
    """PostgreSQL."""


class TestMemoryStore(MemoryHarness, StoreSuite, PropertySuite):
    """The in-memory store."""
