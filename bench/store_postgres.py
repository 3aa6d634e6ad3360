"""The PostgreSQL rows of the store benchmark (imported by ``bench/store.py``)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import subprocess
import threading
import time
from typing import Any

import asyncpg

from citadel import Application, EventRegistry, Module
from citadel.store.postgres import PostgresEventStore

DSN = os.environ.get("CITADEL_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/citadel_bench")

Result = dict[str, Any]


async def reset(dsn: str = DSN) -> None:
    """Create the benchmark database when missing and drop its schemas (it holds nothing else)."""
    base, _, name = dsn.rpartition("/")
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(dsn)
    try:
        for row in await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' "
            "AND nspname NOT IN ('information_schema', 'public')"
        ):
            await connection.execute(f'DROP SCHEMA "{row[0]}" CASCADE')
        await connection.execute("DROP TABLE IF EXISTS public.stored_events, public.raw_events")
    finally:
        await connection.close()


async def bench_raw(seconds: float, row: Any, payload: bytes, per_tx: int = 100) -> Result:
    """The database's own limit here: one connection inserting ``per_tx`` events per transaction."""
    await reset()
    connection = await asyncpg.connect(DSN)
    await connection.execute(
        "CREATE TABLE public.raw_events (position BIGSERIAL PRIMARY KEY, stream_id TEXT NOT NULL, "
        "version INT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL, data BYTEA NOT NULL, "
        "UNIQUE (stream_id, version))"
    )
    events = commits = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        ids = [f"s{events + i}" for i in range(per_tx)]
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO public.raw_events (stream_id, version, event_id, type, data) "
                "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bytea[])",
                ids,
                [1] * per_tx,
                ids,
                ["bench.Deposited"] * per_tx,
                [payload] * per_tx,
            )
        events += per_tx
        commits += 1
    elapsed = time.perf_counter() - started
    await connection.close()
    return row(f"pg raw ({per_tx}/tx)", 1, events, elapsed, commits, [])


async def bench_store(writers: int, seconds: float, group_commit: bool, event: Any, drive: Any, row: Any) -> Result:
    """``PostgresEventStore.append`` from ``writers`` concurrent writers, each on its own stream."""
    await reset()
    registry = EventRegistry([type(event)])
    if group_commit:
        store = PostgresEventStore(DSN, registry, writers=4, pool_size=8)
    else:  # the naive way: one transaction per append, on as many connections as the pool allows
        store = PostgresEventStore(DSN, registry, group_commit=False, writers=15, pool_size=16)
    await store.open()
    try:

        async def one(w: int, i: int) -> int:
            await store.append(f"w{w}", [event], i)
            return 1

        started = time.perf_counter()
        events, latencies = await drive(writers, seconds, one)
        elapsed = time.perf_counter() - started
        name = "pg group commit" if group_commit else "pg transaction per append"
        return row(name, writers, events, elapsed, store.writer.transactions, latencies)  # type: ignore[no-any-return]
    finally:
        await store.close()


async def bench_command_path(
    dispatchers: int, seconds: float, module: Module, command: Any, drive: Any, row: Any
) -> Result:
    """The full command path (dispatch, decide, append, inline projection) on PostgreSQL."""

    async def one(app: Application, w: int) -> int:
        await app.dispatch(command(w))
        return 1

    return await _dispatching(module, dispatchers, seconds, one, drive, row, "pg command path", "deposit")


async def bench_orders(
    dispatchers: int, seconds: float, module: Module, order_then_pay: Any, drive: Any, row: Any
) -> Result:
    """The orders workload (create an order, then pay it) through ``Application.dispatch`` on PostgreSQL."""
    return await _dispatching(
        module, dispatchers, seconds, order_then_pay, drive, row, "pg orders: create, then pay", "order"
    )


async def _dispatching(
    module: Module, dispatchers: int, seconds: float, one: Any, drive: Any, row: Any, name: str, workload: str
) -> Result:
    """Run ``one(app, dispatcher)`` from ``dispatchers`` concurrent loops on a fresh database; return the row."""
    await reset()
    app = Application([module], store=DSN)
    await app.start()
    try:
        started = time.perf_counter()
        events, latencies = await drive(dispatchers, seconds, lambda w, i: one(app, w))
        elapsed = time.perf_counter() - started
        store = app.store
        assert isinstance(store, PostgresEventStore)
        return row(name, dispatchers, events, elapsed, store.writer.transactions, latencies, workload)  # type: ignore[no-any-return]
    finally:
        await app.stop()


def peer_env(threads: int) -> dict[str, str]:
    """The peer library's settings for the benchmark database, with a pool of ``threads`` connections."""
    base, _, name = DSN.rpartition("/")
    host_port = base.rsplit("@", 1)[-1]
    host, _, port = host_port.partition(":")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": name,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": port or "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "POSTGRES_POOL_SIZE": str(threads),
    }


def bench_peer(seconds: float, threads: int, payload: str, row: Any) -> Result | None:
    """The peer library on the same server: create and save an aggregate, from ``threads`` threads."""
    try:
        from eventsourcing.application import Application as PeerApplication
    except ImportError:
        return None
    asyncio.run(reset())
    account = _peer_aggregate()
    app = PeerApplication(env=peer_env(threads))
    deadline = time.perf_counter() + seconds
    counts = [0] * threads

    def work(t: int) -> None:
        while time.perf_counter() < deadline:
            app.save(account(memo=payload))
            counts[t] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    app.close()
    return row("pg peer eventsourcing", threads, sum(counts), elapsed, sum(counts), [])  # type: ignore[no-any-return]


@functools.cache
def _peer_aggregate() -> Any:
    """The peer library's aggregate class, defined once (the library registers each class by its topic)."""
    from eventsourcing.domain import Aggregate, event

    class Account(Aggregate):  # type: ignore[misc]
        @event("Opened")  # type: ignore[untyped-decorator]
        def __init__(self, memo: str) -> None:
            self.memo = memo

    return Account


def pgbench(seconds: float, clients: int = 16) -> dict[str, Any] | None:
    """``pgbench -c clients`` (TPC-B-like) on the same server, as the reference of what the machine can do."""
    base, _, _ = DSN.rpartition("/")
    dsn = f"{base}/citadel_pgbench"
    try:
        asyncio.run(_create_database(dsn))
        subprocess.run(["pgbench", "-i", "-s", "10", "-q", dsn], check=True, capture_output=True, timeout=300)
        out = subprocess.run(
            ["pgbench", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), "-n", dsn],
            check=True,
            capture_output=True,
            text=True,
            timeout=seconds + 120,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"tps = ([0-9.]+)", out)
    return {"clients": clients, "tps": float(match.group(1)) if match else None, "output": out.strip()}


async def _create_database(dsn: str) -> None:
    base, _, name = dsn.rpartition("/")
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def payload_bytes(payload: str) -> bytes:
    """A representative stored payload of the benchmark's event."""
    return json.dumps({"account": "a", "amount": 1, "memo": payload}).encode()
