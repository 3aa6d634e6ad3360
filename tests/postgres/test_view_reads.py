"""Reads of a view by key on PostgreSQL: those asked during one turn of the event loop share one round trip."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from citadel import StoreError
from citadel.store.postgres import PostgresEventStore
from citadel.store.postgres.view_tables import PostgresViewReader, table_name
from citadel.testing.store_suite import ITEMS, make_registry
from tests.backends import POSTGRES, reset_postgres


def postgres_cluster(action: str) -> None:
    """Stop or start the PostgreSQL server the tests run on (``pg_ctlcluster``, as root)."""
    version = next(p.name for p in Path("/etc/postgresql").iterdir())
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True, timeout=60)


@pytest.fixture
async def store() -> AsyncIterator[PostgresEventStore]:
    await reset_postgres()
    opened = PostgresEventStore(POSTGRES, make_registry())
    await opened.open()
    await opened.ensure_views([ITEMS])
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(
            f"INSERT INTO {table_name(ITEMS)} (key, doc) SELECT 'item-' || i, "
            "jsonb_build_object('n', i, 'sku', 'sku-' || i) FROM generate_series(1, 20) i"
        )
    finally:
        await connection.close()
    try:
        yield opened
    finally:
        await opened.close()


async def test_reads_asked_in_one_turn_share_one_round_trip_and_each_caller_gets_its_own_copy(
    store: PostgresEventStore,
) -> None:
    reader = store.view_reader(ITEMS)
    assert isinstance(reader, PostgresViewReader)
    keys = ["item-3", "item-7", "item-3", "missing", "item-20"]
    found = await asyncio.gather(*(reader.get(key) for key in keys))
    assert found == [
        {"n": 3, "sku": "sku-3"},
        {"n": 7, "sku": "sku-7"},
        {"n": 3, "sku": "sku-3"},
        None,
        {"n": 20, "sku": "sku-20"},
    ]
    assert found[0] is not found[2]
    assert reader.batch.reads == 1
    assert await reader.get("item-1") == {"n": 1, "sku": "sku-1"}  # alone in its turn: a round trip of its own
    assert await reader.get("item-2") == {"n": 2, "sku": "sku-2"}
    assert reader.batch.reads == 3


async def test_a_failed_read_fails_every_caller_of_its_turn_and_the_next_turn_reads_again(
    store: PostgresEventStore,
) -> None:
    reader = store.view_reader(ITEMS)
    assert isinstance(reader, PostgresViewReader)
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(f"ALTER TABLE {table_name(ITEMS)} RENAME TO items_away")
        results = await asyncio.gather(reader.get("item-1"), reader.get("item-2"), return_exceptions=True)
        assert all(isinstance(r, asyncpg.UndefinedTableError) for r in results), results
        await connection.execute('ALTER TABLE "suite".items_away RENAME TO items')
    finally:
        await connection.close()
    assert await asyncio.gather(reader.get("item-1"), reader.get("item-2")) == [
        {"n": 1, "sku": "sku-1"},
        {"n": 2, "sku": "sku-2"},
    ]


async def test_a_caller_that_gives_up_leaves_the_others_of_its_turn_their_answer(store: PostgresEventStore) -> None:
    reader = store.view_reader(ITEMS)
    impatient = asyncio.ensure_future(reader.get("item-4"))
    patient = asyncio.ensure_future(reader.get("item-4"))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == {"n": 4, "sku": "sku-4"}
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_a_bad_key_fails_its_own_callers_only(store: PostgresEventStore) -> None:
    reader = store.view_reader(ITEMS)
    assert isinstance(reader, PostgresViewReader)
    good, bad, other = await asyncio.gather(
        reader.get("item-1"), reader.get("bad\x00key"), reader.get("item-2"), return_exceptions=True
    )
    assert good == {"n": 1, "sku": "sku-1"}
    assert other == {"n": 2, "sku": "sku-2"}
    assert isinstance(bad, asyncpg.PostgresError), bad


async def test_reads_while_the_server_is_down_fail_as_a_store_error_and_read_again_once_it_is_back(
    store: PostgresEventStore,
) -> None:
    """What a restart does to a node: its connections are gone and new ones are refused. A reader says so as a
    ``StoreError`` (503 with Retry-After at the HTTP edge), never as a driver error, which reads as a bug (500);
    once the server is back, the pool's new connections read again. The real server is stopped and started."""
    reader = store.view_reader(ITEMS)
    reads = {"get": lambda: reader.get("item-1"), "find": lambda: reader.find(sku="sku-2"), "count": reader.count}
    assert await reader.get("item-3") == {"n": 3, "sku": "sku-3"}  # the pool holds live connections
    postgres_cluster("stop")
    try:
        for read in reads.values():
            with pytest.raises(StoreError, match=r"PostgreSQL read of view suite\.items failed"):
                await read()
    finally:
        postgres_cluster("start")
    async with asyncio.timeout(30):
        while True:  # the pool replaces the connections it lost
            try:
                assert await reader.get("item-1") == {"n": 1, "sku": "sku-1"}
                break
            except StoreError:
                await asyncio.sleep(0.2)
    assert await reader.count() == 20
