"""Event store throughput on SQLite, side by side in one run.

Rows, all with ~300-byte payloads and durable commits (WAL, synchronous=FULL) on the same disk:

* ``raw sqlite``: the database's own limit here, one thread inserting 100 events per transaction.
* ``group commit``: ``SQLiteEventStore.append`` from 1, 10, 100 and 1,000 concurrent writers.
* ``commit per append``: the same store with group commit off (the naive way).
* ``command path``: ``Application.dispatch`` (decide + append + inline projection) from 100 and 1,000 dispatchers;
  once more with the batches written on a writer thread (``?writer=thread``) instead of the event loop.
* ``peer library``: ``eventsourcing`` (create and save an aggregate), when it is installed.
* ``orders``: the workload of the issue that set the comparison, through both libraries: create an order
  aggregate, then pay it (load it, decide, append at its version). Ours through ``Application.dispatch`` from
  1,000 dispatchers with an inline projection of the order's status; the peer's ``save``, ``repository.get``
  and ``save`` again, on one thread (its application is synchronous). Two events per order; the ``x peer``
  of these rows is against the peer's order row.

The process runs with the garbage-collector settings and thread switch interval of a serving process
(``citadel.tuning``, what ``citadel serve`` applies), for every row, the peer's included.

Usage: ``python bench/store.py [--seconds 3] [--writers 1,10,100,1000] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import citadel.tuning as tuning
from citadel import Application, EventRegistry, Module
from citadel.store.sqlite import SQLiteEventStore
from store_domain import PAYLOAD, Deposit, Deposited, command_module, order_module, order_then_pay
from store_peer import bench_peer, bench_peer_orders

Result = dict[str, Any]


def _row(
    name: str,
    writers: int,
    events: int,
    seconds: float,
    commits: int,
    latencies: list[float],
    workload: str = "deposit",
) -> Result:
    latencies.sort()
    pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000) if latencies else None
    return {
        "scenario": name,
        "workload": workload,
        "writers": writers,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
        "commits": commits,
        "events_per_commit": round(events / commits, 1) if commits else None,
        "p50_ms": round(pick(0.5), 2) if pick else None,
        "p99_ms": round(pick(0.99), 2) if pick else None,
    }


async def _drive(writers: int, seconds: float, one: Callable[[int, int], Awaitable[int]]) -> tuple[int, list[float]]:
    """Run ``writers`` loops calling ``one(writer, i)`` until time is up; return events and latencies."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    counts = [0] * writers

    async def loop(w: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            counts[w] += await one(w, i)
            latencies.append(time.perf_counter() - started)
            i += 1

    await asyncio.gather(*(loop(w) for w in range(writers)))
    return sum(counts), latencies


async def bench_store(folder: Path, writers: int, seconds: float, group_commit: bool) -> Result:
    store = SQLiteEventStore(
        folder / f"store-{writers}-{group_commit}.db", EventRegistry([Deposited]), group_commit=group_commit
    )
    await store.open()
    try:
        event = Deposited(account="a", amount=1, memo=PAYLOAD)

        async def one(w: int, i: int) -> int:
            await store.append(f"w{w}", [event], i)
            return 1

        started = time.perf_counter()
        events, latencies = await _drive(writers, seconds, one)
        elapsed = time.perf_counter() - started
        name = "group commit" if group_commit else "commit per append"
        return _row(name, writers, events, elapsed, store.writer.transactions, latencies)
    finally:
        await store.close()


async def bench_command_path(folder: Path, dispatchers: int, seconds: float, writer: str = "loop") -> Result:
    """The command path: each dispatcher deposits again and again (a new stream each, an inline projection)."""

    async def one(app: Application, w: int) -> int:
        await app.dispatch(Deposit(account=f"a{w % 100}", amount=1))
        return 1

    url = f"sqlite:///{folder / f'app-{dispatchers}-{writer}.db'}?writer={writer}"
    name = "command path" if writer == "loop" else "command path, writer thread"
    return await _dispatching(url, command_module(), dispatchers, seconds, one, name, "deposit")


async def bench_orders(folder: Path, dispatchers: int, seconds: float) -> Result:
    """The orders workload through ``Application.dispatch``: each dispatcher creates an order, then pays it."""
    url = f"sqlite:///{folder / f'orders-{dispatchers}.db'}"
    return await _dispatching(
        url, order_module(), dispatchers, seconds, order_then_pay, "orders: create, then pay", "order"
    )


async def _dispatching(
    url: str,
    module: Module,
    dispatchers: int,
    seconds: float,
    one: Callable[[Application, int], Awaitable[int]],
    name: str,
    workload: str,
) -> Result:
    """Run ``one(app, dispatcher)`` from ``dispatchers`` concurrent loops on the SQLite store at ``url``."""
    app = Application([module], store=url)
    await app.start()
    try:
        started = time.perf_counter()
        events, latencies = await _drive(dispatchers, seconds, lambda w, i: one(app, w))
        elapsed = time.perf_counter() - started
        store = app.store
        assert isinstance(store, SQLiteEventStore)
        return _row(name, dispatchers, events, elapsed, store.writer.transactions, latencies, workload)
    finally:
        await app.stop()


def bench_raw(folder: Path, seconds: float, per_tx: int = 100) -> Result:
    db = sqlite3.connect(folder / "raw.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, version INTEGER NOT NULL, "
        "event_id TEXT NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL, data BLOB NOT NULL, "
        "recorded_at REAL NOT NULL, correlation_id TEXT, causation_id TEXT, actor TEXT, UNIQUE (stream_id, version))"
    )
    data = json.dumps({"account": "a", "amount": 1, "memo": PAYLOAD}).encode()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    events = commits = 0
    while time.perf_counter() < deadline:
        rows = [
            (f"s{events + i}", 1, f"{events + i:036d}", "bench.Deposited", 1, data, time.time(), None, None, None)
            for i in range(per_tx)
        ]
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO events (stream_id, version, event_id, type, schema_version, data, recorded_at, "
            "correlation_id, causation_id, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
        events += per_tx
        commits += 1
    elapsed = time.perf_counter() - started
    db.close()
    return _row(f"raw sqlite ({per_tx}/tx)", 1, events, elapsed, commits, [])


def print_table(rows: list[Result]) -> None:
    """Print rows; ratios are to the first raw row of the table and to its first peer row of the same workload."""
    raw = next((r["events_per_s"] for r in rows if "raw" in r["scenario"]), None)
    peers: dict[str, int] = {}
    for r in rows:
        if "peer" in r["scenario"]:
            peers.setdefault(r.get("workload", "deposit"), r["events_per_s"])
    header = (
        f"{'scenario':<30} {'writers':>7} {'events/s':>10} {'ev/commit':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'of raw':>7} {'x peer':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        of_raw = f"{100 * r['events_per_s'] / raw:.0f}%" if raw else ""
        peer = peers.get(r.get("workload", "deposit"))
        x_peer = f"{r['events_per_s'] / peer:.1f}" if peer else ""
        print(
            f"{r['scenario']:<30} {r['writers']:>7} {r['events_per_s']:>10,} {r['events_per_commit'] or '':>9} "
            f"{r['p50_ms'] if r['p50_ms'] is not None else '':>8} {r['p99_ms'] if r['p99_ms'] is not None else '':>8} "
            f"{of_raw:>7} {x_peer:>7}"
        )


async def run_postgres(seconds: float, writer_counts: list[int], dispatcher_counts: list[int]) -> list[Result]:
    """The PostgreSQL rows: raw limit, peer library, group commit vs one transaction per append, command path."""
    import store_postgres as pg

    rows: list[Result] = [await pg.bench_raw(seconds, _row, pg.payload_bytes(PAYLOAD))]
    for threads in (1, 16):
        peer = await asyncio.to_thread(pg.bench_peer, seconds, threads, PAYLOAD, _row)
        if peer is not None:
            rows.append(peer)
    event = Deposited(account="a", amount=1, memo=PAYLOAD)
    for writers in writer_counts:
        rows.append(await pg.bench_store(writers, seconds, True, event, _drive, _row))
        rows.append(await pg.bench_store(writers, seconds, False, event, _drive, _row))
    for dispatchers in dispatcher_counts:
        command = lambda w: Deposit(account=f"a{w % 100}", amount=1)  # noqa: E731
        rows.append(await pg.bench_command_path(dispatchers, seconds, command_module(), command, _drive, _row))
    if dispatcher_counts:
        await pg.reset()
        peer_orders_row = await asyncio.to_thread(
            bench_peer_orders, pg.peer_env(1), seconds, "pg peer eventsourcing: orders", PAYLOAD, _row
        )
        if peer_orders_row is not None:
            rows.append(peer_orders_row)
        rows.append(
            await pg.bench_orders(max(dispatcher_counts), seconds, order_module(), order_then_pay, _drive, _row)
        )
    return rows


async def run(seconds: float, writer_counts: list[int], dispatcher_counts: list[int]) -> list[Result]:
    folder = Path(tempfile.mkdtemp(prefix="citadel-bench-", dir=os.environ.get("BENCH_DIR")))
    rows: list[Result] = []
    try:
        rows.append(bench_raw(folder, seconds))
        peer = bench_peer(folder, seconds, PAYLOAD, _row)
        if peer is not None:
            rows.append(peer)
        for writers in writer_counts:
            rows.append(await bench_store(folder, writers, seconds, group_commit=True))
            rows.append(await bench_store(folder, writers, seconds, group_commit=False))
        for dispatchers in dispatcher_counts:
            rows.append(await bench_command_path(folder, dispatchers, seconds))
        if dispatcher_counts:  # the same, with the batches written on a thread of their own
            rows.append(await bench_command_path(folder, max(dispatcher_counts), seconds, writer="thread"))
            sqlite_env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(folder / "peer-orders.db")}
            peer_orders_row = bench_peer_orders(sqlite_env, seconds, "peer eventsourcing: orders", PAYLOAD, _row)
            if peer_orders_row is not None:
                rows.append(peer_orders_row)
            rows.append(await bench_orders(folder, max(dispatcher_counts), seconds))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--writers", default="1,10,100,1000", help="concurrent writers for the append rows")
    parser.add_argument("--dispatchers", default="100,1000", help="concurrent dispatchers for the command path")
    parser.add_argument("--pg-writers", default="1,16,64,256", help="concurrent writers for the PostgreSQL rows")
    parser.add_argument("--backends", default="sqlite,postgres", help="which tables to run")
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's GC settings and switch interval")
    parser.add_argument("--json", type=Path, default=Path("bench/results/store.json"), help="where to write rows")
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop (citadel serve runs uvloop)"
    )
    args = parser.parse_args()
    if not args.default_gc:
        tuning.tune_for_serving()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    writers = [int(w) for w in args.writers.split(",") if w]
    pg_writers = [int(w) for w in args.pg_writers.split(",") if w]
    dispatchers = [int(d) for d in args.dispatchers.split(",") if d]
    backends = set(args.backends.split(","))
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {args.seconds:g} s per row, durable commits, "
        f"{args.loop} event loop"
    )
    results: dict[str, Any] = {"machine": platform.platform()}
    if "sqlite" in backends:
        print(f"\nSQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL)")
        results["sqlite"] = asyncio.run(run(args.seconds, writers, dispatchers))
        print_table(results["sqlite"])
    if "postgres" in backends:
        import store_postgres as pg

        print("\nPostgreSQL (synchronous_commit=on), same machine")
        results["postgres"] = asyncio.run(run_postgres(args.seconds, pg_writers, dispatchers))
        print_table(results["postgres"])
        reference = pg.pgbench(args.seconds)
        if reference is not None:
            results["pgbench"] = reference
            print(f"\npgbench -c 16 (TPC-B-like, 5 statements per transaction): {reference['tps']:,.0f} transactions/s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nraw rows written to {args.json}")
    if "eventsourcing" not in sys.modules:
        print("(peer library not installed: `pip install eventsourcing` in the benchmark environment to compare)")


if __name__ == "__main__":
    main()
