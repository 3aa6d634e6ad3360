"""Every query the framework runs on PostgreSQL can use an index (checked on the plan, not by timing)."""

from __future__ import annotations

import asyncpg
import pytest

from citadel import View
from citadel.store.postgres import PostgresEventStore
from citadel.store.postgres.event_log import HEAD as _HEAD
from citadel.store.postgres.event_log import READ_ALL as _READ_ALL
from citadel.store.postgres.view_tables import PostgresViewReader, table_name
from citadel.store.postgres.writer import _BEGIN, _VERSIONS
from citadel.testing.store_suite import ITEMS, Happened, make_registry
from tests.backends import POSTGRES, reset_postgres

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


async def test_find_by_a_declared_field_scans_that_fields_index_before_the_table_has_statistics() -> None:
    # A freshly loaded view has no statistics until it is analysed: on the field alone, the planner walked the
    # primary key in key order and filtered every row (40 ms instead of 0.04 for one invoice among 100,000).
    await reset_postgres()
    store = PostgresEventStore(POSTGRES, make_registry())
    await store.open()
    await store.ensure_views([ITEMS])
    await store.close()
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(
            f"INSERT INTO {table_name(ITEMS)} (key, doc) SELECT 'item-' || i, "
            "jsonb_build_object('colour', 'colour-' || i, 'sku', 'sku-' || i) FROM generate_series(1, 20000) i"
        )
        find_sql, params = PostgresViewReader(ITEMS, None).find_sql({"colour": "colour-5"}, 1)
        found = await plan(connection, find_sql, tuple(params))
        assert "items__colour__key" in found, found
        assert "pkey" not in found, found
        rows = await connection.fetch(find_sql, *params)
        assert [r[0] for r in rows] == ['{"sku": "sku-5", "colour": "colour-5"}']
    finally:
        await connection.close()


async def test_ensuring_views_replaces_the_field_only_index_of_earlier_versions() -> None:
    await reset_postgres()
    store = PostgresEventStore(POSTGRES, make_registry())
    await store.open()
    try:
        await store.ensure_views([ITEMS])
        connection = await asyncpg.connect(POSTGRES)
        try:
            await connection.execute(f"CREATE INDEX \"items__colour\" ON {table_name(ITEMS)} ((doc -> 'colour'))")
            await store.ensure_views([ITEMS])
            rows = await connection.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'suite'")
            names = {r[0] for r in rows}
        finally:
            await connection.close()
    finally:
        await store.close()
    assert "items__colour" not in names
    assert {"items__colour__key", "items__sku__unique"} <= names


async def test_a_batchs_stream_versions_are_index_lookups_before_the_events_have_statistics() -> None:
    # As `stream_id = ANY(...) GROUP BY stream_id`, the planner read the whole table for every batch until the
    # table was analysed (31 ms instead of 0.3 at 240,000 events).
    await reset_postgres()
    store = PostgresEventStore(POSTGRES, make_registry())
    await store.open()
    await store.close()
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(
            "INSERT INTO citadel.events (position, stream_id, version, event_id, type, schema_version, data, "
            "recorded_at) SELECT i, 's' || (i / 2), i % 2 + 1, 'e' || i, 'suite.Happened', 1, '\\x7b7d', 0 "
            "FROM generate_series(2, 40001) i"
        )
        streams = ["s1", "s2", "s999", "missing"]
        for sql, args in ((_BEGIN, (streams, ["k"], 0.0)), (_VERSIONS, (streams,))):  # 0.0: records kept since
            found = await plan(connection, sql, args)
            assert "Seq Scan on events" not in found, found
            assert "events_stream_id_version_key" in found, found
        async with connection.transaction():
            rows = await connection.fetch(_BEGIN, streams, ["k"], 0.0)
        assert [(r[1], r[2]) for r in rows] == [("s1", 2), ("s2", 2), ("s999", 2), ("missing", 0)]
        assert [tuple(r) for r in await connection.fetch(_VERSIONS, streams)] == [
            ("s1", 2),
            ("s2", 2),
            ("s999", 2),
            ("missing", 0),
        ]
    finally:
        await connection.close()


async def test_replacing_old_indexes_never_drops_a_new_one_whatever_the_names() -> None:
    # A field named "<f>__key" had the old name of field f's new index; a long name is truncated by PostgreSQL to
    # the old one. Neither is dropped, and a second start changes nothing.
    await reset_postgres()
    clashing = View("clash", indexes=("customer", "customer__key"))
    clashing.bind("suite")
    long = View("a_view_with_a_rather_long_name", indexes=("and_a_field_with_a_rather_long_name",))
    long.bind("suite")
    store = PostgresEventStore(POSTGRES, make_registry())
    await store.open()
    connection = await asyncpg.connect(POSTGRES)
    query = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'suite' ORDER BY indexname"
    oids = (
        "SELECT c.relname, c.oid FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'suite'"
    )
    try:
        await store.ensure_views([clashing, long])
        first = await connection.fetch(query)
        first_oids = dict(await connection.fetch(oids))
        await store.ensure_views([clashing, long])
        assert await connection.fetch(query) == first
        assert dict(await connection.fetch(oids)) == first_oids  # nothing dropped and made again
    finally:
        await connection.close()
        await store.close()
    names = {r[0] for r in first}
    assert {"clash__customer__key", "clash__customer__key__key"} <= names
    assert any(r[0].startswith("a_view_with_a_rather_long_name__and_a_field") and ", key)" in r[1] for r in first)
