"""Modules in other services, over NATS: what forwarding, the relay and signing cost, side by side in one run.

Rows (the shop, SQLite stores, the NATS server on 127.0.0.1:4222, each run in a namespace of its own):

* ``command in process``: ``users.RegisterUser`` dispatched in a process that runs every module.
* ``command forwarded``: the same command dispatched in a billing-only process and answered over NATS
  request/reply by another process that runs users, content and orders (its own store, encrypted).
* ``query in process`` / ``query forwarded``: ``content.GetItem`` the same two ways.
* ``propagation``: from an ``OrderCreated`` committed in the orders service to its ``InvoiceOpened`` committed
  by billing in this process (relay, JetStream, inbox import, process manager, command), per order, from the
  two stores' commit times.
* ``relay``: public events published per second by the outbox relay from a log it has not published yet.

Every row over NATS runs twice: ``signed``, as services always run (each message signed and verified with the
service keys), and ``no-op``, with keys whose tags are empty and always verify (``NoSigning``, which exists
only here: the library has no unsigned mode), so the difference is what signing costs.

Latencies are measured one request at a time (p50/p99 over ``--requests``); the throughput rows use
``--concurrency`` requests in flight. Usage: ``python bench/topology.py [--requests 2000] [--concurrency 64]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from citadel import Application  # noqa: E402
from citadel.context import Actor, DispatchContext  # noqa: E402
from citadel.messaging.nats import NatsBroker  # noqa: E402
from citadel.messaging.signing import ServiceKeys  # noqa: E402
from citadel.security.encryption import Keyring, MasterKeys  # noqa: E402
from citadel.store.url import open_store  # noqa: E402
from citadel.tuning import tune_gc  # noqa: E402
from examples.shop import build_app  # noqa: E402
from examples.shop.content.contract import GetItem, PublishContent  # noqa: E402
from examples.shop.orders.contract import CreateOrder, OrderItem  # noqa: E402
from examples.shop.users.contract import RegisterUser  # noqa: E402

NATS = "nats://127.0.0.1:4222"
ADMIN = Actor("bench", frozenset({"admin"}))
OWNER = ["users", "content", "orders"]


class NoSigning(ServiceKeys):
    """Keys that sign nothing and verify everything: the baseline that shows what signing costs (bench only)."""

    def sign(self, kind: str, subject: str, body: bytes, fields: Any) -> str:
        return f"{self.current}:"

    def verify(self, kind: str, subject: str, body: bytes, fields: Any, signature: str) -> str:
        return self.current


def keys_of(mode: str, setting: str) -> ServiceKeys:
    """The shared keys ``setting`` names, as real keys (``signed``) or as ``NoSigning`` (``no-op``)."""
    return (NoSigning if mode == "no-op" else ServiceKeys).parse(setting)


def admin() -> DispatchContext:
    return DispatchContext(actor=ADMIN)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "mean_ms": statistics.fmean(ordered) * 1000}


async def latencies(call: Callable[[int], Awaitable[Any]], requests: int) -> list[float]:
    for i in range(min(200, requests)):  # warm up: connections, caches, JIT-free but lazy imports
        await call(-1 - i)
    samples = []
    for i in range(requests):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return samples


async def throughput(call: Callable[[int], Awaitable[Any]], requests: int, concurrency: int) -> float:
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            await call(10_000_000 + i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


def serve_owner(folder: Path, broker: str, mode: str, keys: ServiceKeys) -> subprocess.Popen[bytes]:
    """Another process running users, content and orders, answering over NATS (``owner`` below)."""
    command = [sys.executable, __file__, "--owner", broker, "--folder", str(folder), "--mode", mode]
    env = {**os.environ, "BENCH_SERVICE_KEY": keys.setting()}
    log = (folder / "owner.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    if process.stdout.readline() != b"ready\n":
        raise SystemExit(f"the owner service did not start: {(folder / 'owner.log').read_text()[-2000:]}")
    return process


async def owner(broker: str, folder: Path, mode: str) -> None:
    """Run users, content and orders on an encrypted store, as ``citadel serve`` would, until SIGTERM."""
    keyring = Keyring(MasterKeys.load(folder / "keys.json"))
    app = build_app(store=f"sqlite:///{folder / 'owner.db'}", keyring=keyring)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await app.start(modules=OWNER, broker=NatsBroker(broker, keys=keys_of(mode, os.environ["BENCH_SERVICE_KEY"])))
    try:
        print("ready", flush=True)
        await stopped.wait()
    finally:
        await app.stop()


async def drop(broker: str) -> None:
    connection = await nats.connect(NATS)
    with contextlib.suppress(Exception):
        await connection.jetstream().delete_stream(NatsBroker(broker).stream)
    await connection.close()


async def calls(app: Application, tag: str) -> tuple[Callable[[int], Awaitable[Any]], Callable[[int], Awaitable[Any]]]:
    item = await app.dispatch(PublishContent(title="Guide", body="...", price=500), admin())

    async def command(i: int) -> Any:
        return await app.dispatch(RegisterUser(email=f"{tag}{i}@example.com", name="Bench"), admin())

    async def query(i: int) -> Any:
        return await app.query(GetItem(content_id=item.content_id), admin())

    return command, query


async def run(requests: int, concurrency: int, relay_events: int, modes: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    folder = Path(tempfile.mkdtemp(prefix="citadel-topology-"))

    local = build_app(store=f"sqlite:///{folder / 'monolith.db'}")
    async with local:
        command, query = await calls(local, "local")
        rows.append({"row": "command in process", **percentiles(await latencies(command, requests))})
        rows[-1]["per_s"] = await throughput(command, requests, concurrency)
        rows.append({"row": "query in process", **percentiles(await latencies(query, requests))})
        rows[-1]["per_s"] = await throughput(query, requests, concurrency)

    setting = ServiceKeys.generate().setting()
    for mode in modes:
        (folder / mode).mkdir()
        MasterKeys.generate().create(folder / mode / "keys.json")
        rows += await forwarded(folder / mode, mode, keys_of(mode, setting), requests, concurrency)
    for mode in modes:
        rows.append(await relay(folder / mode, relay_events, keys_of(mode, setting), mode))
    return rows


async def forwarded(
    folder: Path, mode: str, keys: ServiceKeys, requests: int, concurrency: int
) -> list[dict[str, Any]]:
    """The rows over NATS, with the owner of users, content and orders in another process."""
    rows: list[dict[str, Any]] = []
    broker = f"{NATS}/bench-{uuid.uuid4().hex[:8]}"
    owner = serve_owner(folder, broker, mode, keys)
    try:
        billing = build_app(store=f"sqlite:///{folder / 'billing.db'}")
        await billing.start(modules=["billing"], broker=NatsBroker(broker, keys=keys))
        try:
            command, query = await calls(billing, "remote")
            rows.append({"row": f"command forwarded, {mode}", **percentiles(await latencies(command, requests))})
            rows[-1]["per_s"] = await throughput(command, requests, concurrency)
            rows.append({"row": f"query forwarded, {mode}", **percentiles(await latencies(query, requests))})
            rows[-1]["per_s"] = await throughput(query, requests, concurrency)
            rows.append(await propagation(billing, folder, min(requests, 500)) | {"row": f"propagation, {mode}"})
        finally:
            await billing.stop()
    finally:
        owner.terminate()
        owner.wait()
        await drop(broker)
    return rows


async def propagation(billing: Application, folder: Path, orders: int) -> dict[str, Any]:
    """Create orders one at a time in the orders service; each one's invoice is opened here."""
    customer = await billing.dispatch(RegisterUser(email="buyer@example.com", name="Buyer"), admin())
    item = await billing.dispatch(PublishContent(title="Book", body="...", price=900), admin())
    created: dict[str, float] = {}
    for _ in range(orders):
        order = await billing.dispatch(
            CreateOrder(customer_id=customer.user_id, items=[OrderItem(content_id=item.content_id, quantity=1)]),
            admin(),
        )
        created[order.order_id] = time.time()
        await asyncio.sleep(0.005)  # a steady trickle, not a burst: this row is about latency
    opened: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while len(opened) < orders and time.monotonic() < deadline:
        opened = {
            r.event.order_id: r.recorded_at
            for r in await billing.store.read_all(0, 1_000_000)
            if r.type == "billing.InvoiceOpened"
        }
        await asyncio.sleep(0.2)
    committed = dict(created)  # replaced by the orders service's own commit times, read from its store
    keyring = Keyring(MasterKeys.load(folder / "keys.json"))  # the orders service encrypts its payloads
    store = open_store(f"sqlite:///{folder / 'owner.db'}", billing.registry, keyring=keyring)
    await store.open()
    try:
        for r in await store.read_all(0, 1_000_000):
            if r.type == "orders.OrderCreated" and r.event.order_id in committed:
                committed[r.event.order_id] = r.recorded_at
    finally:
        await store.close()
    delays = [opened[o] - committed[o] for o in committed if o in opened]
    return {"row": "propagation", **percentiles(delays), "per_s": None, "delivered": f"{len(delays)}/{orders}"}


async def relay(folder: Path, events: int, keys: ServiceKeys, mode: str) -> dict[str, Any]:
    """Publish ``events`` public events already in the log (the relay starts behind, as after an outage)."""
    broker = f"{NATS}/bench-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{folder / 'relay.db'}"
    app = build_app(store=url)
    async with app:
        item = await app.dispatch(PublishContent(title="Poster", body="...", price=100), admin())
        customer = await app.dispatch(RegisterUser(email="relay@example.com", name="Relay"), admin())
        order = CreateOrder(customer_id=customer.user_id, items=[OrderItem(content_id=item.content_id, quantity=1)])
        await asyncio.gather(*(app.dispatch(order, admin()) for _ in range(events)))
    # Now the same log as the service that runs users, content and orders: its relay publishes their events.
    app = build_app(store=url)
    started = time.perf_counter()
    await app.start(modules=OWNER, broker=NatsBroker(broker, keys=keys), consumers=True)
    try:
        relay_consumer = app.topology.relay
        assert relay_consumer is not None
        await relay_consumer.wait_for(await app.store.head_position(), 600)
        elapsed = time.perf_counter() - started
        published = relay_consumer.published
    finally:
        await app.stop()
        await drop(broker)
    return {"row": f"relay, {mode}", "p50_ms": None, "p99_ms": None, "mean_ms": None, "per_s": published / elapsed}


def show(rows: list[dict[str, Any]]) -> None:
    def cell(value: Any, digits: int = 2) -> str:
        return "-" if value is None else f"{value:,.{digits}f}" if isinstance(value, float) else str(value)

    print(f"{'row':<28} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'per second':>12}")
    for row in rows:
        print(
            f"{row['row']:<28} {cell(row['p50_ms']):>9} {cell(row['p99_ms']):>9} {cell(row['mean_ms']):>9} "
            f"{cell(row['per_s'], 0):>12}" + (f"  ({row['delivered']} delivered)" if "delivered" in row else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per latency and throughput row")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight for the throughput")
    parser.add_argument("--relay-events", type=int, default=20_000, help="orders in the log the relay publishes")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/topology.json", help="raw rows")
    parser.add_argument(
        "--modes", default="signed,no-op", help="the modes over NATS, in the order they run (swap it to see drift)"
    )
    parser.add_argument("--owner", help=argparse.SUPPRESS)  # the owner process: its broker URL
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["signed", "no-op"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    tune_gc()  # as citadel serve does in the owner service
    if args.owner:
        asyncio.run(owner(args.owner, args.folder, args.mode))
        return
    rows = asyncio.run(run(args.requests, args.concurrency, args.relay_events, args.modes.split(",")))
    show(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count(), "at": time.time()}, indent=2))


if __name__ == "__main__":
    main()
