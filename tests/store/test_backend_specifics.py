"""What only some backends have: PostgreSQL's positions that subscribers cannot read yet, SQLite's write-ahead log
emptied after a commit that forgets, and the indexes that pruning and snapshot keys use."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from citadel import EventRegistry
from citadel.errors import ConfigurationError
from citadel.messages import Event
from citadel.security.encryption import Keyring, MasterKeys
from citadel.store.base import Commit, EventStore, StreamAppend
from citadel.testing.store_suite import Happened
from citadel.testing.store_suite.event_log import fill
from citadel.testing.store_suite.forgetting import Registered, registration
from tests.backends import POSTGRES
from tests.store.harnesses import PostgresHarness, SQLiteHarness, SQLiteThreadHarness


class TestPostgresPositions(PostgresHarness):
    """Positions are ``transaction id << 20 | index``: ordered, not dense, readable once older transactions end."""

    async def test_positions_of_several_transactions_are_far_apart(self, store: EventStore) -> None:
        positions = await fill(store)
        assert positions[-1] - positions[0] >= 1 << 20  # the case a difference of positions gets wrong
        assert await store.count_after(positions[0]) == len(positions) - 1

    async def test_on_postgresql_both_stop_where_subscribers_read_while_an_older_transaction_is_open(
        self, store: EventStore
    ) -> None:
        positions = await fill(store)
        holder = await asyncpg.connect(POSTGRES)  # an open transaction with an id holds subscribers' reads below it
        try:
            transaction = holder.transaction()
            await transaction.start()
            await holder.fetchval("SELECT pg_current_xact_id()")
            written = await store.append("late", [Happened(n=9), Happened(n=10)])

            assert await store.last_position() == written.last_position
            assert await store.count_after(positions[-1]) == 0
            assert await store.count_after(0) == len(positions)
            assert [record.position for record in await store.read_last(2)] == positions[-2:]

            await transaction.rollback()
        finally:
            await holder.close()
        assert await store.count_after(positions[-1]) == 2
        assert [record.event for record in await store.read_last(2)] == [Happened(n=9), Happened(n=10)]

    async def test_pruning_and_the_snapshot_key_lookup_use_indexes(self, store: EventStore) -> None:
        from citadel.store.postgres.records import _HEADS
        from citadel.store.postgres.records import _PRUNE as PG_PRUNE

        connection = await asyncpg.connect(POSTGRES)
        try:
            await connection.execute("SET enable_seqscan = off")
            for sql, args in ((PG_PRUNE, (0.0, 10)), (_HEADS, (["s1", "s2"],))):
                plan = "\n".join(r[0] for r in await connection.fetch(f"EXPLAIN {sql}", *args))
                assert "Seq Scan" not in plan, plan
            plan = "\n".join(r[0] for r in await connection.fetch(f"EXPLAIN {PG_PRUNE}", 0.0, 10))
            assert "idempotency_by_age" in plan, plan
        finally:
            await connection.close()


class TestSQLiteAtRest(SQLiteHarness):
    """SQLite's files after a commit that forgets, and its indexes."""

    async def test_a_commit_that_forgets_leaves_the_sqlite_write_ahead_log_empty(self, fresh_storage: None) -> None:
        async with self.opened(keyring=Keyring(MasterKeys.generate()), extra_events=[Registered]) as store:
            await store.commit(registration(store))
            wal = Path(f"{self.path}-wal")
            assert wal.stat().st_size > 0
            await store.commit(Commit([StreamAppend("notes", [Happened(n=1)])], forget=["ada"]))
            assert wal.stat().st_size == 0  # every frame copied back, and the log started over
            await store.append("notes", [Happened(n=2)])  # and it keeps working
            assert len(await store.read_stream("notes")) == 2

    async def test_pruning_uses_its_index(self, store: EventStore) -> None:
        import sqlite3

        from citadel.store.sqlite.records import _PRUNE

        db = sqlite3.connect(self.path)
        try:
            plan = " ".join(str(row) for row in db.execute(f"EXPLAIN QUERY PLAN {_PRUNE}", (0.0, 10)))
        finally:
            db.close()
        assert "citadel_idempotency_by_age" in plan, plan


class TestSQLiteThreadAtRest(SQLiteThreadHarness, TestSQLiteAtRest):
    """The same, with batches written on a writer thread."""


class Confided(Event, name="suite.Confided", subject="person"):
    person: str
    words: str


def test_unregistered_subject_fields_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not one of its fields"):

        class Broken(Event, name="suite.Broken", subject="nobody"):
            who: str

    assert EventRegistry([Confided]).of(Confided).name == "suite.Confided"
