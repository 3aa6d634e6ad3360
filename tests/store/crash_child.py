"""A process that writes as fast as it can until it is killed (driven by test_crash_safety.py).

Prints ``ACK <stream> <version>`` after each acknowledged command, flushed, so the parent knows what was
promised durable before it sent SIGKILL.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any

from citadel import Application, Command, CommandContext, Event, Module, Projector, View


class Record(Command, name="crash.Record"):
    stream: str


class Recorded(Event, name="crash.Recorded"):
    part: int


INLINE = View("inline_counts")
ASYNC = View("async_counts")
inline_counts = Projector("crash.inline", views=[INLINE])
async_counts = Projector("crash.async", views=[ASYNC], inline=False)


@inline_counts.on(Recorded)
def _count_inline(event: Recorded, ctx: Any) -> None:
    ctx.view(INLINE).increment(ctx.record.stream_id, "events")


@async_counts.on(Recorded)
def _count_async(event: Recorded, ctx: Any) -> None:
    ctx.view(ASYNC).increment(ctx.record.stream_id, "events")


async def record(command: Record, ctx: CommandContext) -> None:
    ctx.append(command.stream, [Recorded(part=i) for i in range(3)])


def build(path: str) -> Application:
    module = Module("crash", commands={Record: record}, events=[Recorded], projections=[inline_counts, async_counts])
    return Application([module], store=f"sqlite:///{path}", lease_ttl=0.5)


async def main(path: str) -> None:
    app = build(path)
    await app.start()
    out = sys.stdout

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        while True:
            stream = f"s-{rng.randrange(50)}"
            await app.execute(Record(stream=stream))
            version = await app.store.stream_version(stream)
            out.write(f"ACK {stream} {version}\n")
            out.flush()

    await asyncio.gather(*(writer(i) for i in range(64)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
