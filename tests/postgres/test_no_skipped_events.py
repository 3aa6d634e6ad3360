"""Under concurrent writers whose transactions commit out of position order, live subscribers still see every
event exactly once, in position order (the argument is in ``citadel.store.postgres.event_log``)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from citadel import EventRegistry
from citadel.store.postgres import PostgresEventStore
from tests.backends import POSTGRES, reset_postgres

WRITER = Path(__file__).with_name("writer_process.py")
WRITERS = 8
SECONDS = float(os.environ.get("CITADEL_NO_SKIP_SECONDS", "10"))


@pytest.mark.slow
async def test_eight_writer_processes_and_three_live_subscribers_lose_and_repeat_nothing() -> None:
    from tests.postgres.writer_process import SLOW, Wrote

    await reset_postgres()
    registry = EventRegistry([Wrote])
    reader = PostgresEventStore(POSTGRES, registry)
    SLOW.bind("skip")
    await reader.open()
    await reader.ensure_views([SLOW])
    seen: list[list[int]] = [[], [], []]

    async def subscribe(into: list[int]) -> None:
        async for record in reader.subscribe():
            into.append(record.position)

    subscribers = [asyncio.create_task(subscribe(into)) for into in seen]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(WRITER), POSTGRES, str(w), str(SECONDS), stdout=asyncio.subprocess.PIPE, env=env
        )
        for w in range(WRITERS)
    ]
    try:
        outputs = [await p.communicate() for p in processes]
        assert all(p.returncode == 0 for p in processes)
        written = sum(int(out.decode()) for out, _ in outputs)
        log = await reader.read_all(limit=10_000_000)
        final = log[-1].position
        async with asyncio.timeout(30):
            while any(not into or into[-1] < final for into in seen):
                await asyncio.sleep(0.05)
    finally:
        for task in subscribers:
            task.cancel()
        await reader.close()
    assert len(log) == written
    expected = [r.position for r in log]
    assert expected == sorted(set(expected))
    for positions in seen:
        assert positions == expected  # every event once, in position order
    print(f"{written} events from {WRITERS} processes in {SECONDS:g} s; 3 subscribers saw each exactly once")
