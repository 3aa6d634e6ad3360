"""What a memory store's commit writes beside its events: the data keys it seals with (before the events), and
after them the idempotency record, snapshots, and the tombstones of forgotten keys.

Everything a commit stores is sealed as the other backends seal it (``citadel.store.sealing``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from citadel.errors import IdempotencyConflict
from citadel.security.encryption import is_sealed, key_id_of
from citadel.store.encoding import EncodedAppend
from citadel.store.memory.transaction import MemoryTransaction
from citadel.store.records import Commit, IdempotencyRecord
from citadel.store.sealing import Sealer

__all__ = ["learn_keys", "store_extras", "store_keys"]


def learn_keys(tx: MemoryTransaction, sealer: Sealer, key_ids: Iterable[str]) -> None:
    """Open the stored data keys among ``key_ids`` that ``sealer`` does not know yet."""
    keys = tx.db.keys
    sealer.learn({key_id: keys[key_id] for key_id in sealer.missing(key_ids) if key_id in keys})


def store_keys(
    tx: MemoryTransaction,
    sealer: Sealer | None,
    appends: Sequence[EncodedAppend],
    idempotency: IdempotencyRecord | None,
) -> str:
    """Make sure the data keys the commit seals with exist and are open, creating the missing ones; return the key
    its idempotency result is sealed with ("" without encryption)."""
    if sealer is None:
        return ""
    needed = {key for append in appends for key in append.keys}
    result_key = ""
    if idempotency is not None:
        result_key = sealer.result_key(appends, idempotency.module)
        needed.add(result_key)
    missing = sealer.missing(needed)
    learn_keys(tx, sealer, missing)
    created = {key_id for key_id in missing if key_id not in tx.db.keys}
    for key_id in created:
        tx.set(tx.db.keys, key_id, sealer.keyring.create(key_id))
    if created:
        learn_keys(tx, sealer, created)
        tx.undo.append(lambda: sealer.keyring.drop(created))
    return result_key


def store_extras(
    tx: MemoryTransaction,
    sealer: Sealer | None,
    commit: Commit,
    position: int,
    result_key: str,
    forget: Sequence[str],
    ttl: float,
) -> None:
    """Store the commit's idempotency record (refused while its key is taken by an unexpired one), its snapshots,
    and the tombstones of the keys it forgets."""
    db = tx.db
    record = commit.idempotency
    if record is not None:
        taken = db.idempotency.get(record.key)
        if taken is not None and taken[3] >= tx.now - ttl:
            raise IdempotencyConflict(record.key)
        result = record.result if sealer is None else sealer.seal_result(result_key, record)
        tx.set(db.idempotency, record.key, (record.request_hash, result, position, tx.now))
    for snapshot in commit.snapshots:
        if sealer is not None:
            key = _snapshot_key(tx, sealer, snapshot.stream_id)
            if key is None:
                continue  # nothing to seal it with that forgetting reaches: the events are the truth anyway
            snapshot = sealer.seal_snapshot(key, snapshot)
        tx.set(db.snapshots, snapshot.stream_id, (snapshot.version, snapshot.state_version, snapshot.data))
    if forget:
        for key_id in forget:
            tx.set(db.keys, key_id, ("", b""))
        generation = db.forgotten_generation
        db.forgotten_generation = generation + 1
        tx.undo.append(lambda: setattr(db, "forgotten_generation", generation))


def _snapshot_key(tx: MemoryTransaction, sealer: Sealer, stream_id: str) -> str | None:
    """The open data key to seal a new snapshot of ``stream_id`` with (``Sealer.snapshot_key``), or None."""
    db = tx.db
    previous = db.snapshots.get(stream_id)
    since, heads = (0, []) if previous is None else (previous[0], [previous[2]])
    heads += [db.events[p - 1][6] for p in db.streams.get(stream_id, [])[since:]]
    key = sealer.snapshot_key([key_id_of(head) for head in heads if is_sealed(head)])
    if key is not None:
        learn_keys(tx, sealer, [key])
    return None if key is None or sealer.keyring.cipher(key) is None else key
