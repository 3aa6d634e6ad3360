"""The PostgreSQL store's records beside the log: idempotency records (sealed, expiring), the keys snapshots are
sealed with, and dead letters (their error texts sealed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from citadel.security.encryption import is_sealed, key_id_of
from citadel.store.dead_letters import LETTER_COLUMNS, letter_of, parked_error
from citadel.store.postgres.key_table import read_keys
from citadel.store.records import DeadLetter, IdempotencyRecord, Snapshot

if TYPE_CHECKING:
    from citadel.store.sealing import Sealer

__all__ = ["dead_letters", "idempotency_record", "load_snapshot", "park", "prune_idempotency", "snapshot_heads"]

_PRUNE = (
    "DELETE FROM citadel.idempotency WHERE key IN (SELECT key FROM citadel.idempotency WHERE recorded_at < $1 "
    "ORDER BY recorded_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
)
# For each stream: its snapshot's first bytes (a sealed payload names its key in its first 257), and those of
# every event after that snapshot.
_HEADS = """
SELECT s.stream_id, p.head, ARRAY(
    SELECT substring(e.data FROM 1 FOR 257) FROM citadel.events AS e
    WHERE e.stream_id = s.stream_id AND e.version > coalesce(p.version, 0) ORDER BY e.version)
FROM unnest($1::text[]) AS s(stream_id) LEFT JOIN LATERAL (
    SELECT version, substring(data FROM 1 FOR 257) AS head FROM citadel.snapshots WHERE stream_id = s.stream_id
) AS p ON true
"""


async def _learn(connection: Any, sealer: Sealer, key_ids: set[str]) -> None:
    missing = sealer.missing(key_ids)
    if missing:
        sealer.learn(await read_keys(connection, missing))


async def idempotency_record(
    connection: Any, sealer: Sealer | None, key: str, since: float
) -> IdempotencyRecord | None:
    """The record stored for ``key`` at ``since`` or later, its result opened (``forgotten`` when its key is
    gone)."""
    row = await connection.fetchrow(
        "SELECT key, request_hash, result, position FROM citadel.idempotency WHERE key = $1 AND recorded_at >= $2",
        key,
        since,
    )
    if row is None:
        return None
    record = IdempotencyRecord(row[0], row[1], bytes(row[2]), row[3])
    if sealer is None:
        return record
    await _learn(connection, sealer, sealer.sealed_keys([record.result]))
    return sealer.open_result(record)


async def prune_idempotency(connection: Any, before: float, limit: int) -> int:
    """Delete up to ``limit`` records stored before ``before``, oldest first (skipping those another node is
    deleting); return how many."""
    status = await connection.execute(_PRUNE, before, limit)
    return int(status.rsplit(" ", 1)[-1])


async def snapshot_heads(connection: Any, sealer: Sealer, stream_ids: Sequence[str]) -> dict[str, list[str]]:
    """For each stream, the data keys of its snapshot and of every stored event after it, in order (see
    ``Sealer.snapshot_key``), each of them opened."""
    heads: dict[str, list[str]] = {}
    for stream_id, previous, later in await connection.fetch(_HEADS, list(stream_ids)):
        found = [bytes(previous)] if previous is not None else []
        heads[stream_id] = [key_id_of(head) for head in (*found, *map(bytes, later)) if is_sealed(head)]
    await _learn(connection, sealer, {key for keys in heads.values() for key in keys})
    return heads


async def load_snapshot(connection: Any, sealer: Sealer | None, stream_id: str) -> Snapshot | None:
    """The stream's snapshot, its state opened; None when there is none or its key is gone."""
    row = await connection.fetchrow(
        "SELECT stream_id, version, state_version, data FROM citadel.snapshots WHERE stream_id = $1", stream_id
    )
    if row is None:
        return None
    snapshot = Snapshot(row[0], row[1], row[2], bytes(row[3]))
    if sealer is None:
        return snapshot
    await _learn(connection, sealer, sealer.sealed_keys([snapshot.data]))
    return sealer.open_snapshot(snapshot)


async def park(connection: Any, sealer: Sealer | None, consumer: str, record: Any, error: str, attempts: int) -> None:
    """Store a dead letter, its error text sealed with the data key of ``record``'s payload when it names one."""
    key_id = getattr(record, "key_id", None)
    if sealer is not None and key_id is not None:
        await _learn(connection, sealer, {key_id})
    error, sealed = parked_error(sealer, consumer, record, error)
    await connection.execute(
        "INSERT INTO citadel.dead_letters (consumer, position, event_id, error, attempts, recorded_at, sealed_error) "
        "VALUES ($1, $2, $3, $4, $5, extract(epoch FROM clock_timestamp()), $6)",
        consumer,
        record.position,
        record.event_id,
        error,
        attempts,
        sealed,
    )


async def dead_letters(connection: Any, sealer: Sealer | None, consumer: str | None) -> list[DeadLetter]:
    """The dead letters (of ``consumer``), oldest first, their error texts opened where their keys exist."""
    sql = f"SELECT {LETTER_COLUMNS} FROM citadel.dead_letters"  # nosec B608  # constant text
    if consumer is None:
        rows = await connection.fetch(sql + " ORDER BY id")
    else:
        rows = await connection.fetch(sql + " WHERE consumer = $1 ORDER BY id", consumer)
    if sealer is not None:
        await _learn(connection, sealer, sealer.sealed_keys(bytes(row[-1]) for row in rows if row[-1] is not None))
    return [letter_of(sealer, row) for row in rows]
