"""The SQLite writer on the event loop: it runs the batch's jobs on the loop, and commits there while commits are
fast and on a thread while they are slow."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from citadel import NO_STREAM, ProjectionContext, Projector
from citadel.errors import StoreError
from citadel.projection import BoundProjection
from citadel.store.sqlite import SQLiteEventStore
from citadel.store.sqlite.writer import LoopWriter
from citadel.testing.store_suite import Happened, make_registry
from citadel.testing.store_suite.views import COUNTERS, counters, project_inline


def slow_commits(store: SQLiteEventStore, seconds: float, seen: list[int], *, known: bool = True) -> None:
    """Make each COMMIT of the store's writer take ``seconds`` more, and note the thread that runs it; with
    ``known``, the writer has seen slow commits already."""
    writer = store.writer
    assert isinstance(writer, LoopWriter)
    tx = writer._tx
    assert tx is not None

    def trace(statement: str) -> None:
        if statement == "COMMIT":
            seen.append(threading.get_ident())
            time.sleep(seconds)

    tx.db.set_trace_callback(trace)
    if known:
        writer.commit_seconds = seconds


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    """An open store on a new SQLite file, closed after the test."""
    opened = SQLiteEventStore(tmp_path / "store.db", make_registry())
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_fast_commits_run_on_the_loop_and_slow_ones_on_a_thread_until_they_are_fast_again(
    store: SQLiteEventStore,
) -> None:
    writer = store.writer
    assert isinstance(writer, LoopWriter)
    loop_thread = threading.get_ident()
    threads: list[int] = []
    slow_commits(store, 0.0, threads)
    await store.append("fast", [Happened(n=0)], NO_STREAM)
    assert threads == [loop_thread]
    slow_commits(store, 0.05, threads, known=False)
    await store.append("first-slow", [Happened(n=1)], NO_STREAM)  # measured on the loop: now known slow
    assert writer.commit_seconds > writer.slow_commit
    await store.append("second-slow", [Happened(n=2)], NO_STREAM)
    assert threads[1] == loop_thread
    assert threads[2] != loop_thread
    slow_commits(store, 0.0, threads, known=False)
    for i in range(40):
        await store.append(f"fast-{i}", [Happened(n=i)], NO_STREAM)
    assert writer.commit_seconds < writer.slow_commit
    assert threads[-1] == loop_thread
    assert [r.position for r in await store.read_all(limit=100)] == list(range(1, 44))


async def test_the_loop_serves_while_a_batch_commits_and_what_comes_meanwhile_is_the_next_batch(
    store: SQLiteEventStore,
) -> None:
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


class _FailingCommits:
    """The writer's connection, except that its next COMMIT fails as a full disk would (a test double)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.failures = 1

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@pytest.mark.parametrize("where", ["loop", "thread"])
async def test_a_commit_that_fails_fails_its_batch_stores_nothing_and_the_next_batch_commits(
    store: SQLiteEventStore, where: str
) -> None:
    writer = store.writer
    assert isinstance(writer, LoopWriter)
    tx = writer._tx
    assert tx is not None
    real = tx.db
    tx.db = _FailingCommits(real)  # type: ignore[assignment]
    writer.commit_seconds = 0.0 if where == "loop" else 1.0
    results = await asyncio.gather(
        *(store.append(f"s-{i}", [Happened(n=i)], NO_STREAM) for i in range(4)), return_exceptions=True
    )
    # Slow commits split the four into two batches (see the overlap test below): the first fails whole.
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == ([0, 1, 2, 3] if where == "loop" else [0, 1])
    assert all(isinstance(results[i], StoreError) and "disk is full" in str(results[i]) for i in failed)
    assert not real.in_transaction
    await store.append("kept", [Happened(n=9)], NO_STREAM)
    # the failed batch's stream versions are not remembered: its streams are still new
    await store.append("s-0", [Happened(n=10)], NO_STREAM)
    stored = [f"s-{i}" for i in range(4) if i not in failed] + ["kept", "s-0"]
    assert [(r.stream_id, r.position) for r in await store.read_all(limit=10)] == [
        (stream, position) for position, stream in enumerate(stored, start=1)
    ]


async def test_overwritten_and_deleted_rows_are_zeroed_on_disk_only_when_the_store_encrypts(tmp_path: Path) -> None:
    # Zeroing is what makes a forgotten person's deleted views unrecoverable from the file; without encryption
    # nothing is promised of deleted bytes, and the writer spares every view update the memset (whatever the
    # SQLite build's default).
    from citadel.security.encryption import Keyring, MasterKeys

    plain = SQLiteEventStore(tmp_path / "plain.db", make_registry())
    sealed = SQLiteEventStore(tmp_path / "sealed.db", make_registry(), keyring=Keyring(MasterKeys.generate()))
    for store, expected in ((plain, 0), (sealed, 1)):
        await store.open()
        try:
            writer = store.writer
            assert isinstance(writer, LoopWriter)
            assert writer._tx is not None
            assert writer._tx.db.execute("PRAGMA secure_delete").fetchone()[0] == expected
        finally:
            await store.close()


async def test_while_commits_are_slow_a_turns_writes_go_in_two_batches_and_the_second_begins_before_the_first_resumes(
    store: SQLiteEventStore,
) -> None:
    # Two halves take turns: one half's writers decide their next commands on the loop while the other half's
    # COMMIT runs on the committer thread, instead of all of them waiting for one COMMIT together.
    writer = store.writer
    assert isinstance(writer, LoopWriter)
    tx = writer._tx
    assert tx is not None
    events: list[str] = []

    def trace(statement: str) -> None:
        if statement == "BEGIN IMMEDIATE":
            events.append("begin")
        elif statement == "COMMIT":
            time.sleep(0.05)

    tx.db.set_trace_callback(trace)
    writer.commit_seconds = 0.05  # known slow: commits go to the thread

    async def append(i: int) -> None:
        await store.append(f"s-{i}", [Happened(n=i)], NO_STREAM)
        events.append("resumed")

    await asyncio.gather(*(append(i) for i in range(10)))
    assert (writer.transactions, writer.jobs) == (2, 10)
    assert events == ["begin", "begin"] + ["resumed"] * 10
    assert [r.position for r in await store.read_all(limit=100)] == list(range(1, 11))
    writer.overlap = False  # the other way, for comparison: one batch, and everyone waits for its COMMIT
    events.clear()
    await asyncio.gather(*(append(i) for i in range(10, 20)))
    assert (writer.transactions, writer.jobs) == (3, 20)
    assert events == ["begin"] + ["resumed"] * 10


async def test_a_batch_writes_each_counter_once_however_many_of_its_commits_bump_it(store: SQLiteEventStore) -> None:
    await project_inline(store)
    writer = store.writer
    assert isinstance(writer, LoopWriter)
    tx = writer._tx
    assert tx is not None
    statements: list[str] = []
    tx.db.set_trace_callback(lambda sql: statements.append(sql) if '"suite__counters"' in sql else None)
    batches = writer.transactions
    await asyncio.gather(*(store.append(f"s-{n}", [Happened(n=n)], NO_STREAM) for n in range(100, 140)))
    batches = writer.transactions - batches
    assert await counters(store) == {
        "totals": {"count": 40, "sum": sum(range(100, 140))},
        "parity-0": {"count": 20},
        "parity-1": {"count": 20},
    }
    # 120 increments of four counters (totals' count and sum, two parities): four writes per batch at most
    assert batches < 10
    assert len(statements) <= 4 * batches


class OddField(Projector):
    """Increments a field whose name is no plain JSON path, and catches what SQLite says of it."""

    def __init__(self) -> None:
        super().__init__("suite.odd", views=[COUNTERS])
        self.errors: list[Exception] = []

    def handle_happened(self, event: Happened, ctx: ProjectionContext) -> None:
        view = ctx.view(COUNTERS)
        try:
            view.increment("odd", '"q')
        except sqlite3.Error as exc:
            self.errors.append(exc)
        view.increment("odd", "count")


async def test_an_increment_of_a_field_that_is_no_plain_name_fails_where_it_is_made(store: SQLiteEventStore) -> None:
    await store.ensure_views([COUNTERS])
    odd = OddField()
    store.add_inline_projection(BoundProjection(odd, "suite", store.registry))
    await store.append("a", [Happened(n=1)], NO_STREAM)  # creates the document: no path to follow yet
    assert odd.errors == []
    await store.append("a", [Happened(n=2)], 1)  # now the path is followed, and refused in the handler
    assert len(odd.errors) == 1
    assert (await store.view_reader(COUNTERS).get("odd"))["count"] == 2
