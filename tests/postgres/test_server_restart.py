"""A live subscription survives a restart of the PostgreSQL server: nothing lost, nothing repeated."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from citadel import StoreError
from citadel.store.postgres import PostgresEventStore
from citadel.testing.store_suite import Happened, make_registry
from tests.backends import POSTGRES, reset_postgres


def restart_postgres() -> None:
    version = next(p.name for p in Path("/etc/postgresql").iterdir())
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=60)


async def append_until_stored(store: PostgresEventStore, n: int) -> None:
    """Append, retrying while the server is away (what a caller does with a StoreError)."""
    async with asyncio.timeout(60):
        while True:
            try:
                await store.append(f"s{n % 5}", [Happened(n=n)])
                return
            except StoreError:
                await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_a_subscriber_sees_every_event_once_across_a_server_restart() -> None:
    await reset_postgres()
    store = PostgresEventStore(POSTGRES, make_registry(), poll_interval=0.2)
    await store.open()
    seen: list[int] = []

    async def follow() -> None:
        async for record in store.subscribe():  # rides out the outage by itself
            seen.append(record.event.n)  # type: ignore[attr-defined]

    reader = asyncio.create_task(follow())
    try:
        for n in range(20):
            await append_until_stored(store, n)
        await asyncio.to_thread(restart_postgres)
        for n in range(20, 40):
            await append_until_stored(store, n)
        async with asyncio.timeout(30):
            while len(seen) < 40:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # and nothing more arrives
    finally:
        reader.cancel()
        await store.close()
    assert seen == list(range(40))
