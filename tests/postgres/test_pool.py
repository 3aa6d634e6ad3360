"""The store's pooled connections go back to the pool without a reset query, and nothing leaks between uses."""

from __future__ import annotations

from citadel.store.postgres import PostgresEventStore
from tests.backends import POSTGRES, reset_postgres
from tests.store.suite import Happened, make_registry


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
