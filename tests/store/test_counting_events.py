"""Counting the events after a position and reading the last N, on every backend.

On PostgreSQL a position is ``transaction id << 20 | index``: positions are not dense, so both count events and
never subtract positions. The log here has several events per transaction and several transactions.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from suite import POSTGRES, Happened, Noted, open_backend

from citadel import Event
from citadel.security.encryption import Keyring, MasterKeys
from citadel.store.base import Commit, EventStore, StreamAppend

SIZES = (3, 1, 4)
"""Events per transaction of ``fill``."""


class Confided(Event, name="suite.Confided", subject="person"):
    person: str
    secret: str


async def fill(store: EventStore) -> list[int]:
    """Write three transactions of 3, 1 and 4 events (n = 1 to 8) over two streams; return their positions."""
    n = 0
    for size in SIZES:
        events = [Happened(n=n + k) for k in range(1, size + 1)]
        n += size
        half = size // 2
        await store.commit(Commit([StreamAppend("left", events[:half]), StreamAppend("right", events[half:])]))
    return [record.position for record in await store.read_all(1, 100)]


async def test_count_after_counts_the_events_after_each_position(backend: str, store: EventStore) -> None:
    positions = await fill(store)

    assert len(positions) == sum(SIZES)
    if backend == "postgres":  # the case a difference of positions gets wrong
        assert positions[-1] - positions[0] >= 1 << 20
    assert [await store.count_after(p) for p in [0, *positions]] == list(range(len(positions), -1, -1))


async def test_count_after_a_position_between_events_counts_those_after_it(store: EventStore) -> None:
    positions = await fill(store)

    assert await store.count_after(positions[3] - 1) == len(positions) - 3
    assert await store.count_after(positions[-1] + (1 << 20)) == 0


async def test_count_after_on_an_empty_log_is_zero(store: EventStore) -> None:
    assert await store.count_after(0) == 0


@pytest.mark.parametrize("n", [1, 2, 4, 5, 8])
async def test_read_last_returns_the_last_n_events_in_position_order(store: EventStore, n: int) -> None:
    positions = await fill(store)

    last = await store.read_last(n)

    assert [record.position for record in last] == positions[-n:]
    assert [record.event for record in last] == [Happened(n=k) for k in range(9 - n, 9)]


async def test_read_last_of_more_events_than_the_log_holds_returns_them_all(store: EventStore) -> None:
    positions = await fill(store)

    assert [record.position for record in await store.read_last(100)] == positions


async def test_read_last_of_none_or_of_an_empty_log_returns_nothing(store: EventStore) -> None:
    assert await store.read_last(3) == []
    await fill(store)
    assert await store.read_last(0) == []


async def test_read_last_opens_sealed_payloads_and_marks_a_forgotten_subjects_events(
    backend: str, tmp_path: Path
) -> None:
    keyring = Keyring(MasterKeys.generate())
    async with open_backend(backend, tmp_path, keyring=keyring, extra_events=[Confided]) as store:
        await store.append("ada", [Confided(person="ada", secret="s1"), Confided(person="ada", secret="s2")])
        await store.append("bob", [Confided(person="bob", secret="s3")])
        await store.commit(Commit([StreamAppend("notes", [Noted(text="ada is gone")])], forget=["ada"]))

        last = await store.read_last(3)

    assert [(record.stream_id, record.forgotten) for record in last] == [
        ("ada", True),
        ("bob", False),
        ("notes", False),
    ]
    assert [record.event for record in last[1:]] == [Confided(person="bob", secret="s3"), Noted(text="ada is gone")]


@pytest.mark.parametrize("backend", ["postgres"])  # only PostgreSQL commits events subscribers cannot read yet
async def test_on_postgresql_both_stop_where_subscribers_read_while_an_older_transaction_is_open(
    store: EventStore,
) -> None:
    positions = await fill(store)
    holder = await asyncpg.connect(POSTGRES)  # an open transaction with an id holds subscribers' reads below it
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.fetchval("SELECT pg_current_xact_id()")
        written = await store.append("late", [Happened(n=9), Happened(n=10)])

        assert await store.last_position() == written.last_position
        assert await store.count_after(positions[-1]) == 0
        assert await store.count_after(0) == len(positions)
        assert [record.position for record in await store.read_last(2)] == positions[-2:]

        await transaction.rollback()
    finally:
        await holder.close()
    assert await store.count_after(positions[-1]) == 2
    assert [record.event for record in await store.read_last(2)] == [Happened(n=9), Happened(n=10)]
