"""A SQLite store's files are its owner's alone when the store creates them (0600, in a new folder of 0700), and
left as they are when the user made them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from citadel.store.sqlite import SQLiteEventStore
from citadel.testing.store_suite import Happened, make_registry


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def append_one(path: Path) -> None:
    store = SQLiteEventStore(path, make_registry())
    await store.open()
    try:
        await store.append("s-1", [Happened(n=1)])
        assert mode(path.with_name(path.name + "-wal")) == mode(path)  # SQLite gives its journal the file's mode
    finally:
        await store.close()


async def test_a_database_the_store_creates_is_0600_in_a_new_folder_of_0700(tmp_path: Path) -> None:
    path = tmp_path / "var" / "data" / "shop.db"

    await append_one(path)

    assert mode(path) == 0o600
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "data") == 0o700


async def test_a_database_file_the_user_made_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    sqlite3.connect(path).close()
    path.chmod(0o640)

    await append_one(path)

    assert mode(path) == 0o640


async def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var").chmod(0o750)

    await append_one(tmp_path / "var" / "shop.db")

    assert mode(tmp_path / "var") == 0o750
    assert mode(tmp_path / "var" / "shop.db") == 0o600
