"""Modules' own migrations: versioned steps in the module's namespace, run once each, in dependency order."""

from __future__ import annotations

import pytest

from citadel import Application, Module, StoreError
from citadel.testing import running

NOTES = [
    "CREATE TABLE {table:notes} (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "INSERT INTO {table:notes} (id, body) VALUES ('first', 'written by step 2')",
]


def notes_app(steps: list[str]) -> Application:
    return Application([Module("journal", migrations=steps), Module("reader", depends_on=["journal"])])


async def rows(app: Application) -> list[tuple[str, str]]:
    from citadel.store.postgres import PostgresEventStore

    store = app.store
    if isinstance(store, PostgresEventStore):
        return [tuple(r) for r in await store.pool.fetch('SELECT id, body FROM "journal"."notes" ORDER BY id')]
    reader = store._db  # type: ignore[attr-defined]
    return list(reader.execute('SELECT id, body FROM "journal__notes" ORDER BY id').fetchall())


async def test_each_step_runs_once_across_restarts_and_new_steps_run_on_the_next_start(store_url: str) -> None:
    async with running(notes_app(NOTES), store=store_url) as app:
        assert await rows(app) == [("first", "written by step 2")]
    async with running(notes_app(NOTES), store=store_url) as app:
        assert await rows(app) == [("first", "written by step 2")]  # step 2 did not run again
    more = [*NOTES, "INSERT INTO {table:notes} (id, body) VALUES ('second', 'step 3')"]
    async with running(notes_app(more), store=store_url) as app:
        assert await rows(app) == [("first", "written by step 2"), ("second", "step 3")]


async def test_a_database_migrated_by_newer_code_refuses_older_code(store_url: str) -> None:
    async with running(notes_app(NOTES), store=store_url):
        pass
    with pytest.raises(StoreError, match="deploy the newer code"):
        async with running(notes_app(NOTES[:1]), store=store_url):
            pass


async def test_a_failing_step_leaves_the_recorded_version_where_it_was(store_url: str) -> None:
    broken = [NOTES[0], "INSERT INTO {table:missing} VALUES (1)"]
    with pytest.raises(Exception, match="missing"):
        async with running(notes_app(broken), store=store_url):
            pass
    async with running(notes_app(NOTES), store=store_url) as app:  # step 2 runs now, after step 1 stayed done
        assert await rows(app) == [("first", "written by step 2")]


def test_modules_migrate_after_the_modules_they_depend_on() -> None:
    app = Application([Module("c", depends_on=["b"]), Module("a"), Module("b", depends_on=["a"])])
    assert [m.name for m in app.dependency_order()] == ["a", "b", "c"]
