"""The SQLite writer on the event loop: it runs the batch's jobs on the loop and commits on a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from suite import Happened, make_registry

from citadel import NO_STREAM
from citadel.store.sqlite import SQLiteEventStore
from citadel.store.sqlite_writer import LoopWriter


def slow_commits(store: SQLiteEventStore, seconds: float, seen: list[int]) -> None:
    """Make each COMMIT of the store's writer take ``seconds`` more, and note the thread that runs it."""
    writer = store.writer
    assert isinstance(writer, LoopWriter)
    tx = writer._tx
    assert tx is not None

    def trace(statement: str) -> None:
        if statement == "COMMIT":
            seen.append(threading.get_ident())
            time.sleep(seconds)

    tx.db.set_trace_callback(trace)


async def test_the_loop_serves_while_a_batch_commits_and_what_comes_meanwhile_is_the_next_batch(
    tmp_path: Path,
) -> None:
    store = SQLiteEventStore(tmp_path / "store.db", make_registry())
    await store.open()
    try:
        threads: list[int] = []
        slow_commits(store, 0.2, threads)
        first = asyncio.ensure_future(store.append("a", [Happened(n=1)], NO_STREAM))
        await asyncio.sleep(0)  # the batch runs at the end of this turn and its commit starts
        turns = 0
        loop = asyncio.get_running_loop()
        until = loop.time() + 0.1
        while loop.time() < until:  # the loop keeps turning while the commit waits for the disk
            await asyncio.sleep(0)
            turns += 1
        assert not first.done()
        later = [store.append(f"b-{i}", [Happened(n=i)], NO_STREAM) for i in range(20)]
        await asyncio.gather(first, *later)
        assert turns > 100
        assert threading.get_ident() not in threads
        assert (store.writer.transactions, store.writer.jobs) == (2, 21)
        assert [r.position for r in await store.read_all(limit=100)] == list(range(1, 22))
    finally:
        await store.close()


async def test_closing_waits_for_the_commit_in_hand_and_writes_what_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteEventStore(path, make_registry())
    await store.open()
    slow_commits(store, 0.1, [])
    appends = [asyncio.ensure_future(store.append(f"s-{i}", [Happened(n=i)], NO_STREAM)) for i in range(5)]
    await asyncio.sleep(0)  # the first batch is committing
    appends += [asyncio.ensure_future(store.append(f"t-{i}", [Happened(n=i)], NO_STREAM)) for i in range(5)]
    await asyncio.sleep(0)  # these are queued behind it
    assert not any(a.done() for a in appends)
    await store.close()
    assert all(a.done() and a.exception() is None for a in appends)
    reopened = SQLiteEventStore(path, make_registry())
    await reopened.open()
    try:
        assert len(await reopened.read_all(limit=100)) == 10
    finally:
        await reopened.close()
