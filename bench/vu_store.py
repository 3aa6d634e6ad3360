"""What the virtual-user benchmark reads from the store (imported by ``bench/vu.py``): its head, the slowest
consumer's checkpoint and the events between two positions, from the database itself, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["events_between", "slowest_checkpoint", "store_head"]


_HEAD_SQL = "SELECT coalesce(max(position), 0) FROM {table}"
_COUNT_SQL = "SELECT count(*) FROM {table} WHERE position > {after:d} AND position <= {upto:d}"
_SLOWEST_SQL = "SELECT coalesce(min(position), 0) FROM {checkpoints}"


async def _postgres_value(url: str, sql: str) -> int:
    import asyncpg

    connection = await asyncpg.connect(url.split("?", 1)[0])
    try:
        return int(await connection.fetchval(sql))
    finally:
        await connection.close()


def _store_value(url: str, sql: str, **values: int) -> int:
    """One number from the store's event table, read from the database itself (read only, no lock taken)."""
    if url.startswith("sqlite:///"):
        import sqlite3

        path = url.removeprefix("sqlite:///").split("?", 1)[0]
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            query = sql.format(table="citadel_events", checkpoints="citadel_checkpoints", **values)
            return int(db.execute(query).fetchone()[0])
    query = sql.format(table="citadel.events", checkpoints="citadel.checkpoints", **values)
    return asyncio.run(_postgres_value(url, query))


def store_head(url: str) -> int:
    """The store's last committed position."""
    return _store_value(url, _HEAD_SQL)


def slowest_checkpoint(url: str) -> int:
    """The position of the consumer (async projection, process manager) furthest behind, as last saved."""
    return _store_value(url, _SLOWEST_SQL)


def events_between(url: str, after: int, upto: int) -> int:
    """How many events the store holds after position ``after`` up to ``upto`` (PostgreSQL's positions have gaps)."""
    return _store_value(url, _COUNT_SQL, after=after, upto=upto)
