"""A writer process for the no-skip test: appends as fast as it can, holding each transaction open a random
while after its inserts (an inline projection that sleeps), until its deadline; prints how many it wrote."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any

from citadel import Event, EventRegistry, Projector, View
from citadel.projection import BoundProjection
from citadel.store.postgres import PostgresEventStore


class Wrote(Event, name="skip.Wrote"):
    writer: int
    n: int


SLOW = View("slow")
slow = Projector("skip.slow", views=[SLOW])


@slow.on(Wrote)
async def linger(event: Wrote, ctx: Any) -> None:
    if event.n % 3 == 0:
        await asyncio.sleep(random.uniform(0, 0.02))  # inside the writing transaction, before its commit


async def main(dsn: str, writer: int, seconds: float) -> None:
    registry = EventRegistry([Wrote])
    store = PostgresEventStore(dsn, registry, writers=3, pool_size=6)
    store.add_inline_projection(BoundProjection(slow, "skip", registry))
    await store.open()
    deadline = time.monotonic() + seconds
    written = 0

    async def loop(lane: int) -> None:
        nonlocal written
        n = 0
        while time.monotonic() < deadline:
            await store.append(f"w{writer}-{lane}", [Wrote(writer=writer, n=n)])
            n += 1
            written += 1

    try:
        await asyncio.gather(*(loop(lane) for lane in range(8)))
    finally:
        await store.close()
    print(written, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
