"""The store's pooled connections go back to the pool without a reset query, and nothing leaks between uses."""

from __future__ import annotations

import asyncio
import contextlib

from citadel.store.postgres import PostgresEventStore
from citadel.testing.store_suite import Happened, make_registry
from tests.backends import POSTGRES, reset_postgres


async def test_a_read_costs_one_query_on_its_connection_not_two() -> None:
    # asyncpg's default reset ran "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL" on every
    # release: a second round trip per read, with nothing to undo.
    await reset_postgres()
    store = PostgresEventStore(POSTGRES, make_registry(), writers=1, pool_size=2)
    await store.open()
    try:
        await store.append("s", [Happened(n=1)])
        async with store.pool.acquire() as connection:
            protocol = connection._protocol  # the same connection serves the reads below (a pool of one reader)
            before = protocol.queries_count
        for _ in range(10):
            assert [r.event for r in await store.read_stream("s")] == [Happened(n=1)]
        assert protocol.queries_count - before == 10
    finally:
        await store.close()


async def test_a_transaction_left_open_is_rolled_back_when_its_connection_returns() -> None:
    await reset_postgres()
    store = PostgresEventStore(POSTGRES, make_registry(), writers=1, pool_size=2)
    await store.open()
    try:
        async with store.pool.acquire() as connection:
            await connection.execute("BEGIN")
            await connection.execute("CREATE TABLE citadel.left_open (n int)")
        async with store.pool.acquire() as connection:
            assert not connection.is_in_transaction()
            assert await connection.fetchval("SELECT to_regclass('citadel.left_open')") is None
    finally:
        await store.close()


async def test_a_connection_whose_query_was_cancelled_is_not_lent_again() -> None:
    # PostgreSQL acts on a cancel request asynchronously: reused, the connection's next query could be the one
    # cancelled. Without a reset query to absorb it, such a connection must be closed, not returned.
    await reset_postgres()
    store = PostgresEventStore(POSTGRES, make_registry(), writers=1, pool_size=2)
    await store.open()
    try:
        pool = store.pool
        slow = asyncio.ensure_future(pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep(5)"))
        await asyncio.sleep(0.2)
        busy = {
            row[0]
            for row in await pool.fetch(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(5)%' AND pid <> pg_backend_pid()"
            )
        }
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        lent = {await pool.fetchval("SELECT pg_backend_pid()") for _ in range(20)}
        assert busy
        assert not busy & lent
        assert await store.read_all() == []  # and the store reads on
    finally:
        await store.close()
