"""The in-memory backend beyond the conformance suite: its URL, the test kit's default, and shared data keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from citadel import Application, ConfigurationError, Module
from citadel.store.memory import MemoryDatabase, MemoryEventStore
from citadel.store.shared_keys import keep_data_key, read_data_keys
from citadel.store.sqlite import SQLiteEventStore
from citadel.store.url import open_store
from citadel.testing import running
from citadel.testing.store_suite import Happened, make_registry


async def test_a_memory_url_opens_an_empty_memory_store_each_time() -> None:
    first, second = open_store("memory://", make_registry()), open_store("memory://", make_registry())
    assert isinstance(first, MemoryEventStore)
    assert isinstance(second, MemoryEventStore)
    await first.open()
    await second.open()
    try:
        await first.append("a", [Happened(n=1)])
        assert await second.head_position() == 0
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("url", ["memory://shop", "memory:///var/x.db", "memory://?keep=1"])
def test_a_memory_url_with_a_name_or_options_is_refused_with_the_form_to_use(url: str) -> None:
    with pytest.raises(ConfigurationError, match="takes no name or options; write memory://"):
        open_store(url, make_registry())


async def test_the_test_kit_runs_an_application_in_memory_unless_told_otherwise(tmp_path: Path) -> None:
    async with running(Application([Module("notes")])) as app:
        assert isinstance(app.store, MemoryEventStore)
    async with running(Application([Module("notes")]), tmp_path) as app:
        assert isinstance(app.store, SQLiteEventStore)
        assert (tmp_path / "app.db").exists()


async def test_a_data_key_kept_from_another_service_never_replaces_a_stored_one() -> None:
    store = MemoryEventStore(make_registry(), database=MemoryDatabase())
    assert await keep_data_key(store, "subject:ada", "m1", b"wrapped") == ("m1", b"wrapped")
    assert await keep_data_key(store, "subject:ada", "m2", b"other") == ("m1", b"wrapped")
    assert await read_data_keys(store, ["subject:ada", "subject:bob"]) == {"subject:ada": ("m1", b"wrapped")}
