"""Every backend stores the position of the event a reaction's commit answers, and finds where the reaction chains
that start at or before a position end."""

from __future__ import annotations

import asyncio

import pytest
from suite import Happened

from citadel import NO_STREAM, Metadata
from citadel.store.base import Commit, EventStore, StreamAppend


async def write(store: EventStore, causes: list[int | None]) -> list[int]:
    """Append one event per entry, the n-th caused by the event at index ``causes[n]`` (None: by no event);
    return their positions."""
    positions: list[int] = []
    for n, cause in enumerate(causes):
        meta = Metadata(causation_position=0 if cause is None else positions[cause])
        positions.append((await store.append(f"s-{n}", [Happened(n=n)], NO_STREAM, meta)).last_position)
    return positions


@pytest.mark.parametrize(
    ("causes", "start", "after", "end"),
    [
        ([None, None], 0, 0, None),
        ([None, 0, 1, 2], 0, 0, 3),
        ([None, 0, 1, 2], 0, 2, 3),
        ([None, 0, 1, 2], 0, 3, None),
        ([None, None, 0, 1], 1, 1, 3),
        ([None, None, 1, 2, 0], 0, 0, 4),
        ([None, None, 0, 1, None, 4], 1, 1, 3),
        ([None, 0, None, 2, 1], 0, 0, 4),
    ],
    ids=[
        "no reactions",
        "a chain",
        "a chain from part way",
        "nothing after the chain",
        "chains from the start and before it",
        "another chain in between is not this one",
        "a chain that starts after the position",
        "a chain that continues after another",
    ],
)
async def test_the_chains_end_at_the_last_event_whose_causes_lead_back_to_the_start(
    store: EventStore, causes: list[int | None], start: int, after: int, end: int | None
) -> None:
    positions = await write(store, causes)
    assert await store.chain_end(positions[start], positions[after]) == (0 if end is None else positions[end])


async def test_every_event_of_a_reaction_s_commit_is_part_of_its_chain(store: EventStore) -> None:
    cause = await store.append("order", [Happened(n=1)], NO_STREAM)
    meta = Metadata(causation_position=cause.last_position)
    reaction = await store.append("invoice", [Happened(n=2), Happened(n=3)], NO_STREAM, meta)
    assert await store.chain_end(cause.last_position, cause.last_position) == reaction.last_position
    assert await store.chain_end(cause.last_position, reaction.first_position) == reaction.last_position


async def test_commits_written_together_keep_their_own_causes(store: EventStore) -> None:
    cause = await store.append("a", [Happened(n=0)], NO_STREAM)
    other = await store.append("b", [Happened(n=0)], NO_STREAM)
    commits = [
        Commit(
            [StreamAppend(f"s-{n}", [Happened(n=n)], NO_STREAM)],
            Metadata(causation_position=cause.last_position if n == 1 else other.last_position),
        )
        for n in range(1, 21)
    ]
    results = await asyncio.gather(*(store.commit(c) for c in commits))  # one group commit, or a few
    assert await store.chain_end(cause.last_position, other.last_position) == results[0].position
