"""What a store leaves at rest, read behind its back: every byte of a SQLite database and of its -wal and -shm
files, or a ``pg_dump`` of a PostgreSQL database (which writes ``bytea`` columns in hex, so a needle is looked
for in hex too)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["found_at_rest", "pg_dump", "sqlite_files"]


def sqlite_files(database: Path) -> dict[str, bytes]:
    """The database file and its -wal and -shm files (those that exist), by name."""
    return {p.name: p.read_bytes() for p in database.parent.iterdir() if p.name.startswith(database.name)}


def pg_dump(dsn: str) -> bytes:
    """A plain-text dump of the database at ``dsn``."""
    program = shutil.which("pg_dump")
    if program is None:
        raise RuntimeError("pg_dump is not installed (Debian package postgresql-client)")
    done = subprocess.run([program, "--dbname", dsn], capture_output=True, check=True, timeout=60)
    return done.stdout


def found_at_rest(stored: dict[str, bytes], needles: list[str]) -> list[tuple[str, str]]:
    """The ``(file, needle)`` pairs where a needle occurs, as its bytes or as their hex."""
    return [
        (name, needle)
        for name, data in stored.items()
        for needle in needles
        if needle.encode() in data or needle.encode().hex().encode() in data.lower()
    ]
