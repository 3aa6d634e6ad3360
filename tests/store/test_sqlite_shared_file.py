"""Several SQLite stores (as several processes would) on one file: consistent versions, shared log."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from citadel import NO_STREAM, Application, Command, CommandContext, ConcurrencyError, Event, Module, Projector, View
from citadel.errors import StoreError
from citadel.store.sqlite import SQLiteEventStore
from citadel.store.sqlite.writer import LoopWriter
from citadel.testing.store_suite import Happened, make_registry


async def open_two(path: Path) -> tuple[SQLiteEventStore, SQLiteEventStore]:
    first = SQLiteEventStore(path, make_registry(), poll_interval=0.05)
    second = SQLiteEventStore(path, make_registry(), poll_interval=0.05)
    await first.open()
    await second.open()
    return first, second


async def test_two_stores_on_one_file_see_each_others_stream_versions(tmp_path: Path) -> None:
    first, second = await open_two(tmp_path / "shared.db")
    try:
        await first.append("a", [Happened(n=1)], NO_STREAM)
        await second.append("a", [Happened(n=2)], 1)  # the second store learns version 1 from the file
        with pytest.raises(ConcurrencyError) as caught:
            await first.append("a", [Happened(n=3)], 1)  # the first store's cached version is stale
        assert caught.value.actual == 2
        await first.append("a", [Happened(n=3)], 2)
        assert [r.event for r in await second.read_stream("a")] == [Happened(n=1), Happened(n=2), Happened(n=3)]
        assert [r.position for r in await first.read_all()] == [1, 2, 3]
    finally:
        await first.close()
        await second.close()


async def test_concurrent_writers_in_two_stores_interleave_without_losing_or_reusing_positions(
    tmp_path: Path,
) -> None:
    first, second = await open_two(tmp_path / "shared.db")
    try:
        await asyncio.gather(
            *(
                store.append(f"{name}-{i}", [Happened(n=i)])
                for i in range(100)
                for name, store in (("one", first), ("two", second))
            )
        )
        log = await first.read_all(limit=1000)
        assert [r.position for r in log] == list(range(1, 201))
    finally:
        await first.close()
        await second.close()


async def test_a_subscriber_sees_events_another_store_wrote(tmp_path: Path) -> None:
    first, second = await open_two(tmp_path / "shared.db")
    try:
        seen: list[int] = []

        async def follow() -> None:
            async for record in first.subscribe():
                seen.append(record.position)
                if len(seen) == 5:
                    return

        reader = asyncio.create_task(follow())
        for i in range(5):
            await second.append("other", [Happened(n=i)])
        await asyncio.wait_for(reader, 5)
        assert seen == [1, 2, 3, 4, 5]
    finally:
        await first.close()
        await second.close()


class Jotted(Event, name="shared.Noted"):
    n: int


class Jot(Command, name="shared.Note"):
    n: int


class _Fragile(Projector):
    """An inline projection that fails on negative numbers, after the batch's events were written."""

    notes = View("notes")

    def handle_jotted(self, event: Jotted) -> None:
        if event.n < 0:
            raise RuntimeError("refused by the projection")
        self.notes[str(event.n)] = {"n": event.n}


async def _note(command: Jot, ctx: CommandContext) -> None:
    ctx.append(f"note-{ctx.new_id()}", [Jotted(n=command.n)], NO_STREAM)


def _noting(path: Path) -> Application:
    module = Module("shared", commands={Jot: _note}, events=[Jotted], projections=[_Fragile()])
    return Application([module], store=f"sqlite:///{path}")


async def test_a_batch_redone_after_a_failing_job_takes_positions_after_another_stores_writes(tmp_path: Path) -> None:
    first, second = _noting(tmp_path / "shared.db"), _noting(tmp_path / "shared.db")
    await first.start(consumers=False)
    await second.start(consumers=False)
    try:
        await first.dispatch(Jot(n=1))
        await second.dispatch(Jot(n=2))  # the file moves on under the first store's writer
        numbers = [*range(10, 60), -1, *range(60, 110)]
        results = await asyncio.gather(*(first.dispatch(Jot(n=n)) for n in numbers), return_exceptions=True)
        failed = [n for n, r in zip(numbers, results, strict=True) if isinstance(r, Exception)]
        assert failed == [-1]  # the failing job alone, not the whole batch redone on a stale head
        positions = [r.position for r in await first.store.read_all(0, 1000)]
        assert positions == list(range(1, len(numbers) + 2))
    finally:
        await first.stop()
        await second.stop()


async def test_a_write_waits_out_another_process_lock_while_the_loop_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = SQLiteEventStore(path, make_registry())
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)  # another process, as SQLite sees it
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        append = asyncio.ensure_future(store.append("a", [Happened(n=1)], NO_STREAM))
        ticks = 0
        for _ in range(30):  # 0.3 s of other work on the loop
            await asyncio.sleep(0.01)
            ticks += 1
            assert not append.done()
        other.execute("ROLLBACK")
        result = await asyncio.wait_for(append, 5)
        assert ticks == 30
        assert (result.version, result.first_position) == (1, 1)
        assert [r.event for r in await store.read_stream("a")] == [Happened(n=1)]
    finally:
        other.close()
        await store.close()


def test_on_uvloop_a_write_waiting_for_the_lock_tries_again_every_millisecond_not_every_turn(tmp_path: Path) -> None:
    # uvloop runs timers shorter than a millisecond on the next turn of the loop: a retry delay below that made
    # the waiting writer spin, taking the CPU that the lock holder (another process) needed to finish.
    uvloop = pytest.importorskip("uvloop")
    path = tmp_path / "shared.db"

    async def main() -> tuple[int, int]:
        store = SQLiteEventStore(path, make_registry())
        await store.open()
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            append = asyncio.ensure_future(store.append("a", [Happened(n=1)], NO_STREAM))
            turns = 0
            loop = asyncio.get_running_loop()
            until = loop.time() + 0.2
            while loop.time() < until:  # the loop keeps turning meanwhile, as a busy server's does
                await asyncio.sleep(0)
                turns += 1
            other.execute("ROLLBACK")
            await asyncio.wait_for(append, 5)
            assert isinstance(store.writer, LoopWriter)
            return store.writer.lock_retries, turns
        finally:
            other.close()
            await store.close()

    retries, turns = uvloop.run(main())
    assert 50 <= retries <= 300  # about one try per millisecond of the 0.2 s
    assert turns > 10 * retries  # where a spinning writer tries on every turn


async def test_a_write_fails_cleanly_when_the_lock_is_held_past_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = SQLiteEventStore(path, make_registry(), busy_timeout=0.2)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await store.append("kept", [Happened(n=0)], NO_STREAM)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            await asyncio.wait_for(store.append("a", [Happened(n=1)], NO_STREAM), 5)
        other.execute("ROLLBACK")
        await store.append("a", [Happened(n=2)], NO_STREAM)  # the store writes again once the lock is free
        assert [(r.stream_id, r.position) for r in await store.read_all()] == [("kept", 1), ("a", 2)]
        assert [r.event for r in await store.read_stream("a")] == [Happened(n=2)]
    finally:
        other.close()
        await store.close()


async def test_a_reader_of_some_types_pages_through_its_own_and_another_stores_events_without_skipping(
    tmp_path: Path,
) -> None:
    # A page ends at the head this store knows, without a query; past it the store looks at the file, where
    # another process may have written more.
    first, second = await open_two(tmp_path / "shared.db")
    try:
        for i in range(10):
            await first.append(f"one-{i}", [Happened(n=i)], NO_STREAM)
        for i in range(10, 15):
            await second.append(f"two-{i}", [Happened(n=i)], NO_STREAM)
        seen: list[int] = []
        position = 0
        while True:
            records, upto = await first.read_all_of(["suite.Happened"], position + 1, 4)
            if upto <= position:
                break
            assert upto - position <= 4
            seen += [r.event.n for r in records]
            position = upto
        assert seen == list(range(15))
        assert position == 15
    finally:
        await first.close()
        await second.close()
