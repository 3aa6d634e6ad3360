"""The group commit, traced on every backend: each batch is a ``commit`` span of its own, linked to the
``dispatch`` span of every command it holds, with the inline projections' ``project`` spans as its children;
and each event keeps the traceparent of its command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from citadel import Application
from citadel.store.base import EventStore
from citadel.store.sqlite import SQLiteEventStore
from citadel.store.url import open_store
from examples.shop import build_app
from examples.shop.users.contract import RegisterUser
from tests.backends import clean_store_url

COMMANDS = 20


@pytest.fixture(params=["sqlite", "sqlite-thread", "memory", "postgres"])
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Application]:
    app = build_app(secure=False)
    store: EventStore
    if request.param == "sqlite-thread":
        store = SQLiteEventStore(tmp_path / "shop.db", app.registry, writer="thread")
    elif request.param == "memory":
        store = open_store("memory://", app.registry)
    else:
        store = open_store(await clean_store_url(str(request.param), tmp_path), app.registry)
    await app.start(store=store)
    try:
        yield app
    finally:
        await app.stop()


async def test_each_batch_is_a_commit_span_linked_to_its_commands_holding_their_projections(
    spans: InMemorySpanExporter, shop: Application
) -> None:
    await asyncio.gather(
        *(shop.dispatch(RegisterUser(email=f"user{n}@example.com", name=f"User {n}")) for n in range(COMMANDS))
    )
    finished = spans.get_finished_spans()
    dispatched = {s.context.span_id: s for s in finished if s.name == "dispatch users.RegisterUser" and s.context}
    commits = [s for s in finished if s.name == "commit"]
    assert len(dispatched) == COMMANDS
    assert all(commit.parent is None for commit in commits)
    linked = [link.context.span_id for commit in commits for link in commit.links]
    assert sorted(linked) == sorted(dispatched)  # every command in exactly one batch
    for commit in commits:  # a batch may also hold the consumers' own jobs (leases, checkpoints): no links
        assert dict(commit.attributes or {})["citadel.batch.size"] >= len(commit.links)
    for commit in commits:
        assert commit.context is not None
        projected = [s for s in finished if s.parent is not None and s.parent.span_id == commit.context.span_id]
        assert [s.name for s in projected] == ["project users.Users"] * len(commit.links)

    stored = {tuple(str(r.traceparent).split("-")[1:3]) for r in await shop.store.read_all(1, 100)}
    assert stored == {(f"{s.context.trace_id:032x}", f"{i:016x}") for i, s in dispatched.items() if s.context}
