"""Every query the framework runs on PostgreSQL can use an index (checked on the plan, not by timing)."""

from __future__ import annotations

import asyncpg
import pytest

from citadel.store.postgres import _HEAD, _READ_ALL, PostgresEventStore
from citadel.store.postgres_views import PostgresViewReader
from citadel.store.postgres_writer import _VERSIONS
from tests.backends import POSTGRES, reset_postgres
from tests.store.suite import ITEMS, Happened, make_registry

QUERIES = {
    "read_all": (_READ_ALL, (1, 100)),
    "head": (_HEAD, ()),
    "read_stream": (
        "SELECT * FROM citadel.events WHERE stream_id = $1 AND version >= $2 ORDER BY version",
        ("s1", 1),
    ),
    "stream versions": (_VERSIONS, (["s1", "s2"],)),
    "idempotency": ("SELECT * FROM citadel.idempotency WHERE key = $1", ("k",)),
    "checkpoint": ("SELECT position FROM citadel.checkpoints WHERE name = $1", ("c",)),
    "snapshot": ("SELECT * FROM citadel.snapshots WHERE stream_id = $1", ("s1",)),
    "lease": ("SELECT * FROM citadel.leases WHERE name = $1 AND owner = $2", ("c", "o")),
    "dead letters": ("SELECT * FROM citadel.dead_letters WHERE consumer = $1 ORDER BY id", ("c",)),
}


async def plan(connection: asyncpg.Connection, sql: str, args: tuple[object, ...]) -> str:
    rows = await connection.fetch(f"EXPLAIN {sql}", *args)
    return "\n".join(r[0] for r in rows)


@pytest.fixture
async def connection() -> asyncpg.Connection:
    await reset_postgres()
    store = PostgresEventStore(POSTGRES, make_registry())
    await store.open()
    await store.ensure_views([ITEMS])
    for n in range(50):
        await store.append(f"s{n % 7}", [Happened(n=n)])
    await store.close()
    connection = await asyncpg.connect(POSTGRES)
    await connection.execute("ANALYZE")
    await connection.execute("SET enable_seqscan = off")  # a plan without a usable index shows a Seq Scan
    yield connection
    await connection.close()


@pytest.mark.parametrize("name", list(QUERIES))
async def test_the_hot_queries_of_the_store_use_an_index(connection: asyncpg.Connection, name: str) -> None:
    sql, args = QUERIES[name]
    found = await plan(connection, sql, args)
    assert "Seq Scan" not in found, found
    assert "Index" in found, found


async def test_view_lookups_by_key_and_by_declared_field_use_an_index(connection: asyncpg.Connection) -> None:
    reader = PostgresViewReader(ITEMS, None)
    by_key = await plan(connection, reader.select, ("item-1",))
    find_sql, params = reader.find_sql({"colour": "red"}, 10)
    by_field = await plan(connection, find_sql, tuple(params))
    unique_sql, unique_params = reader.find_sql({"sku": "sku-1"}, 10)
    by_unique = await plan(connection, unique_sql, tuple(unique_params))
    for found in (by_key, by_field, by_unique):
        assert "Seq Scan" not in found, found
