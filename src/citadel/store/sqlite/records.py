"""The SQLite store's records beside the log: idempotency records (sealed, expiring), the keys snapshots are
sealed with, and dead letters (their error texts sealed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from citadel.errors import IdempotencyConflict
from citadel.security.encryption import is_sealed, key_id_of
from citadel.store.dead_letters import LETTER_COLUMNS, letter_of, parked_error
from citadel.store.records import DeadLetter, IdempotencyRecord, Snapshot
from citadel.store.sqlite.key_table import read_keys

if TYPE_CHECKING:
    from citadel.store.sealing import Sealer
    from citadel.store.sqlite.transaction import WriteTransaction

__all__ = [
    "dead_letters",
    "idempotency_record",
    "load_snapshot",
    "park",
    "prune_idempotency",
    "snapshot_key",
    "store_idempotency",
]

# An expired record (not pruned yet) is replaced as if it were not there; a live one refuses the insert.
_STORE = (
    "INSERT INTO citadel_idempotency (key, request_hash, result, position, recorded_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET request_hash = excluded.request_hash, result = excluded.result, "
    "position = excluded.position, recorded_at = excluded.recorded_at WHERE citadel_idempotency.recorded_at < ?"
)
_PRUNE = (
    "DELETE FROM citadel_idempotency WHERE key IN "
    "(SELECT key FROM citadel_idempotency WHERE recorded_at < ? ORDER BY recorded_at LIMIT ?)"
)
_KEY_OF = "substr({}, 1, 257)"  # a sealed payload's format byte, key id length and key id: at most 257 bytes


def store_idempotency(
    tx: WriteTransaction, record: IdempotencyRecord, result: bytes, position: int, ttl: float
) -> None:
    """Insert an idempotency record (``result`` as stored: sealed or not).

    Raises:
        IdempotencyConflict: the key is taken by a record that has not expired.
    """
    row = (record.key, record.request_hash, result, position, tx.now, tx.now - ttl)
    if not tx.db.execute(_STORE, row).rowcount:
        raise IdempotencyConflict(record.key)


def idempotency_record(db: Any, sealer: Sealer | None, key: str, since: float) -> IdempotencyRecord | None:
    """The record stored for ``key`` at ``since`` or later, its result opened (``forgotten`` when its key is
    gone)."""
    row = db.execute(
        "SELECT key, request_hash, result, position FROM citadel_idempotency WHERE key = ? AND recorded_at >= ?",
        (key, since),
    ).fetchone()
    if row is None:
        return None
    record = IdempotencyRecord(*row)
    if sealer is None:
        return record
    missing = sealer.missing(sealer.sealed_keys([record.result]))
    if missing:
        sealer.learn(read_keys(db, missing))
    return sealer.open_result(record)


def prune_idempotency(tx: WriteTransaction, before: float, limit: int) -> int:
    """Delete up to ``limit`` records stored before ``before``, oldest first; return how many."""
    return int(tx.db.execute(_PRUNE, (before, limit)).rowcount)


def snapshot_key(tx: WriteTransaction, sealer: Sealer, stream_id: str) -> str | None:
    """The open data key to seal a new snapshot of ``stream_id`` with, from the keys of its previous snapshot
    and of every event after it (this transaction's included), or None: no snapshot (``Sealer.snapshot_key``)."""
    db = tx.db
    previous = db.execute(
        f"SELECT version, {_KEY_OF.format('data')} FROM citadel_snapshots WHERE stream_id = ?",  # nosec B608  # constant text
        (stream_id,),
    ).fetchone()
    since, heads = (0, []) if previous is None else (previous[0], [previous[1]])
    heads += [
        row[0]
        for row in db.execute(
            f"SELECT {_KEY_OF.format('data')} FROM citadel_events WHERE stream_id = ? AND version > ? ORDER BY version",  # nosec B608  # constant text
            (stream_id, since),
        )
    ]
    key = sealer.snapshot_key([key_id_of(head) for head in heads if is_sealed(head)])
    if key is not None and sealer.missing([key]):
        sealer.learn(read_keys(db, [key]))
    return None if key is None or sealer.keyring.cipher(key) is None else key


def load_snapshot(db: Any, sealer: Sealer | None, stream_id: str) -> Snapshot | None:
    """The stream's snapshot, its state opened; None when there is none or its key is gone."""
    row = db.execute(
        "SELECT stream_id, version, state_version, data FROM citadel_snapshots WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    if row is None:
        return None
    snapshot = Snapshot(*row)
    if sealer is None:
        return snapshot
    missing = sealer.missing(sealer.sealed_keys([snapshot.data]))
    if missing:
        sealer.learn(read_keys(db, missing))
    return sealer.open_snapshot(snapshot)


def park(tx: WriteTransaction, sealer: Sealer | None, consumer: str, record: Any, error: str, attempts: int) -> None:
    """Store a dead letter, its error text sealed with the data key of ``record``'s payload when it names one."""
    key_id = getattr(record, "key_id", None)
    if sealer is not None and key_id is not None and sealer.missing([key_id]):
        sealer.learn(read_keys(tx.db, [key_id]))
    error, sealed = parked_error(sealer, consumer, record, error)
    tx.db.execute(
        "INSERT INTO citadel_dead_letters (consumer, position, event_id, error, attempts, recorded_at, sealed_error) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (consumer, record.position, record.event_id, error, attempts, tx.now, sealed),
    )


def dead_letters(db: Any, sealer: Sealer | None, consumer: str | None) -> list[DeadLetter]:
    """The dead letters (of ``consumer``), oldest first, their error texts opened where their keys exist."""
    sql = f"SELECT {LETTER_COLUMNS} FROM citadel_dead_letters"  # nosec B608  # constant text
    params: tuple[Any, ...] = ()
    if consumer is not None:
        sql += " WHERE consumer = ?"
        params = (consumer,)
    rows = db.execute(sql + " ORDER BY id", params).fetchall()
    if sealer is not None:
        missing = sealer.missing(sealer.sealed_keys(row[-1] for row in rows if row[-1] is not None))
        if missing:
            sealer.learn(read_keys(db, missing))
    return [letter_of(sealer, row) for row in rows]
