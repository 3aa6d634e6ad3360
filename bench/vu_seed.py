"""Seeding the shop for the virtual-user benchmark (imported by ``bench/vu.py``; not measured).

The seed is made in process, through the ``Application`` (no HTTP): users, content items, and orders whose
invoices billing's process manager opens. It is cached under ``var/bench/`` in a folder named by its
parameters, holding the SQLite file, the master key file it was encrypted with and ``seed.json`` (every
customer with its orders, their invoices and amounts). Runs copy the file, since they write to it.

On PostgreSQL the seed is a database of its own (``<name>_seed``) and each run gets a copy made with
``CREATE DATABASE ... TEMPLATE``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from citadel.security.encryption import Keyring, MasterKeys
from citadel.testing import settle
from examples.shop import build_app
from examples.shop.content.contract import PublishContent
from examples.shop.orders.contract import CreateOrder, OrderItem
from examples.shop.users.contract import RegisterUser

__all__ = ["Seed", "SeedParameters", "copy_store", "load_or_seed", "remove_copy"]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench"
BATCH = 1000
"""Commands dispatched at once while seeding (group commit batches them)."""


@dataclass(frozen=True)
class SeedParameters:
    """What the seed holds: the cache key."""

    users: int = 10_000
    orders: int = 100_000
    items: int = 20

    def name(self) -> str:
        return f"vu-seed-u{self.users}-o{self.orders}-i{self.items}"


@dataclass
class Seed:
    """A seeded store and what the load generator needs to know about it."""

    folder: Path
    store_url: str
    """The seeded store itself (runs use copies of it)."""
    master_key_file: Path
    items: list[str]
    customers: list[dict[str, Any]]
    """``{"user_id": ..., "orders": [[order_id, invoice_id, amount], ...]}`` for every seeded customer."""
    seconds: float = 0.0
    """How long seeding took (0 when it came from the cache)."""
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


async def _batched(factories: Sequence[Callable[[], Awaitable[T]]], label: str) -> list[T]:
    """Await ``factories`` ``BATCH`` at a time; print progress; return the results in order."""
    results: list[T] = []
    started = time.perf_counter()
    for start in range(0, len(factories), BATCH):
        results += await asyncio.gather(*(f() for f in factories[start : start + BATCH]))
        if (start // BATCH) % 20 == 19:
            rate = len(results) / (time.perf_counter() - started)
            print(f"  {label}: {len(results):,}/{len(factories):,} ({rate:,.0f}/s)", flush=True)
    return results


async def _seed_app(store_url: str, keyring: Keyring, parameters: SeedParameters) -> dict[str, Any]:
    """Write the seed through the application; return the items and the customers with their invoices."""
    app = build_app(store=store_url, secure=False, keyring=keyring)
    await app.start()
    try:
        publish = [
            lambda i=i: app.dispatch(PublishContent(title=f"Item {i}", body="Benchmark item " * 8, price=500 + i * 100))
            for i in range(parameters.items)
        ]
        items = [r.content_id for r in await _batched(publish, "items")]
        register = [
            lambda i=i: app.dispatch(RegisterUser(email=f"seed{i}@bench.example", name=f"Seed {i}"))
            for i in range(parameters.users)
        ]
        users = [r.user_id for r in await _batched(register, "users")]

        def order(i: int) -> Awaitable[Any]:
            items_of = [OrderItem(content_id=items[(i + k) % len(items)], quantity=1 + k) for k in range(1 + i % 2)]
            return app.dispatch(CreateOrder(customer_id=users[i % len(users)], items=items_of))

        await _batched([lambda i=i: order(i) for i in range(parameters.orders)], "orders")
        print("  waiting for billing to open every invoice ...", flush=True)
        await settle(app, timeout=3600)
        customers = await _invoices_by_customer(app, users)
    finally:
        await app.stop()
    return {"items": items, "customers": customers}


async def _invoices_by_customer(app: Any, users: list[str]) -> list[dict[str, Any]]:
    """Read the log's ``InvoiceOpened`` events: each customer's orders with their invoice and amount."""
    orders: dict[str, list[list[Any]]] = {user: [] for user in users}
    position = 1
    while True:
        page = await app.store.read_all(position, 5000)
        if not page:
            break
        for record in page:
            if record.type == "billing.InvoiceOpened":
                event = record.event
                orders[event.customer_id].append([event.order_id, event.invoice_id, event.amount])
        position = page[-1].position + 1
    return [{"user_id": user, "orders": orders[user]} for user in users]


def _sqlite_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


async def _admin_execute(dsn: str, *statements: str) -> None:
    """Run statements on the PostgreSQL server's maintenance database (outside a transaction)."""
    import asyncpg

    base = dsn.split("?", 1)[0].rpartition("/")[0]
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _database_name(dsn: str) -> str:
    return dsn.split("?", 1)[0].rpartition("/")[2]


def _with_database(dsn: str, name: str) -> str:
    base, _, rest = dsn.partition("?")
    return f"{base.rpartition('/')[0]}/{name}" + (f"?{rest}" if rest else "")


def load_or_seed(parameters: SeedParameters, store: str) -> Seed:
    """Return the cached seed for ``parameters`` on ``store`` ("sqlite" or a PostgreSQL URL); make it if missing."""
    postgres = store.startswith(("postgresql://", "postgres://"))
    folder = CACHE / (parameters.name() + ("-pg-" + _database_name(store) if postgres else ""))
    manifest = folder / "seed.json"
    key_file = folder / "master-keys.json"
    store_url = (
        _with_database(store, _database_name(store) + "_seed") if postgres else f"sqlite:///{folder / 'shop.db'}"
    )
    if manifest.exists():
        data = json.loads(manifest.read_text())
        return Seed(folder, store_url, key_file, data["items"], data["customers"], cached=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    MasterKeys.generate().create(key_file)  # 0600: the server refuses a key file others can read
    if postgres:
        name = _database_name(store_url)
        asyncio.run(_admin_execute(store, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
    print(f"seeding {parameters} into {store_url} (once; cached in {folder}) ...", flush=True)
    started = time.perf_counter()
    data = asyncio.run(_seed_app(store_url, Keyring(MasterKeys.load(key_file)), parameters))
    seconds = time.perf_counter() - started
    data["seconds"] = round(seconds, 1)
    manifest.write_text(json.dumps(data))
    print(f"seeded in {seconds:.0f} s", flush=True)
    return Seed(folder, store_url, key_file, data["items"], data["customers"], seconds=seconds)


def copy_store(seed: Seed, run_folder: Path, label: str) -> str:
    """A fresh copy of the seeded store for one run; return its URL (without options)."""
    if seed.store_url.startswith("sqlite:///"):
        target = run_folder / f"{label}.db"
        source = _sqlite_file(seed.store_url)
        for suffix in ("", "-wal", "-shm"):
            copy = target.with_name(target.name + suffix)
            copy.unlink(missing_ok=True)
            if source.with_name(source.name + suffix).exists():  # a cleanly closed store has no WAL left
                shutil.copyfile(source.with_name(source.name + suffix), copy)
        return f"sqlite:///{target}"
    name = f"{_database_name(seed.store_url).removesuffix('_seed')}_{label}"
    template = _database_name(seed.store_url)
    asyncio.run(
        _admin_execute(
            seed.store_url,
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}" TEMPLATE "{template}"',
        )
    )
    return _with_database(seed.store_url, name)


def remove_copy(store_url: str) -> None:
    """Delete a run's copy of the seed (its SQLite files, or its PostgreSQL database)."""
    if store_url.startswith("sqlite:///"):
        path = _sqlite_file(store_url)
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        return
    name = _database_name(store_url)
    asyncio.run(_admin_execute(store_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
