"""Several node processes on one database: each consumer runs on exactly one node, and when that node is
killed another takes over within seconds, without processing anything twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.backends import POSTGRES, reset_postgres

NODE = Path(__file__).with_name("node_process.py")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))


async def start_node() -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(NODE), POSTGRES, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert process.stdout is not None
    node_id = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
    return process, node_id


async def holder(connection: asyncpg.Connection, name: str) -> str | None:
    value = await connection.fetchval(
        "SELECT owner FROM citadel.leases WHERE name = $1 AND expires_at > clock_timestamp()", name
    )
    return str(value) if value is not None else None


@pytest.mark.slow
async def test_killing_the_node_that_runs_a_consumer_moves_it_to_another_node_within_seconds() -> None:
    from mini import GetRevenue, PlaceOrder, build

    await reset_postgres()
    client = build(store=POSTGRES)  # this process only sends commands and reads: no consumers
    await client.start(consumers=False)
    connection = await asyncpg.connect(POSTGRES)
    nodes = [await start_node() for _ in range(2)]
    try:
        for _ in range(5):
            await client.dispatch(PlaceOrder(customer="c", amount=1))
        async with asyncio.timeout(10):
            while (first := await holder(connection, "analytics.revenue")) is None:
                await asyncio.sleep(0.1)
        assert first in {node_id for _, node_id in nodes}
        victim = next(process for process, node_id in nodes if node_id == first)
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        for _ in range(5):
            await client.dispatch(PlaceOrder(customer="c", amount=1))
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        async with asyncio.timeout(15):
            while (await holder(connection, "analytics.revenue")) in (None, first):
                await asyncio.sleep(0.1)
            takeover = loop.time() - killed_at
            while (await client.query(GetRevenue())).get("orders") != 10:
                await asyncio.sleep(0.1)
        assert takeover < 5
        await asyncio.sleep(1.5)  # nothing is counted twice later either
        assert await client.query(GetRevenue()) == {"orders": 10}
        invoices = await connection.fetchval("SELECT count(*) FROM citadel.events WHERE type = 'billing.InvoiceOpened'")
        assert invoices == 10
    finally:
        for process, _ in nodes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await connection.close()
        await client.stop()
