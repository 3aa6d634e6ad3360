"""What a store does to encrypt at rest, whatever its backend: seal rows as it writes them, open records as it
reads them. The backend only fetches and writes wrapped keys (see ``citadel.security.encryption``).

Whatever a row may quote of a subject is sealed with that subject's data key, so that forgetting the subject
leaves none of it readable: events, snapshots (their stream's subject key), idempotency results (the key of the
events their command appended) and dead letters' error texts (their event's key). An idempotency record's
request hash is an HMAC under a key of the store's own (``REQUEST_KEY``), never forgotten.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from citadel.errors import ConfigurationError, PayloadForgotten, StoreError
from citadel.security.encryption import FORMAT, Keyring, is_sealed, key_id_of, open_sealed, seal
from citadel.store.encoding import EncodedAppend, associated_data, snapshot_associated_data
from citadel.store.records import IdempotencyRecord, RecordedEvent, Snapshot

__all__ = ["NO_KEYRING", "REQUEST_KEY", "Sealer", "WrappedKey", "refuse_sealed", "refuse_unkeyed", "request_hash"]

WrappedKey = tuple[str, bytes]
"""A stored data key: ``(id of the master key that wrapped it, wrapped bytes)``."""

REQUEST_KEY = "store:idempotency"
"""The data key of the store's own that idempotency request hashes are HMACs under."""
_SUBJECT = "subject:"

NO_KEYRING = (
    "the payloads in this store are encrypted, but no master key was given: set master_key_file "
    "(CITADEL_MASTER_KEY_FILE) or CITADEL_MASTER_KEY, with encrypt on (CITADEL_ENCRYPT), and configure the "
    "application from these settings (`citadel.configure(app)`, as `citadel serve` does), or give it a keyring "
    "(Application(keyring=...))"
)
"""Why a store without a keyring refuses an encrypted store, and the settings that fix it."""


def refuse_unkeyed(master_ids: Collection[str]) -> None:
    """Refuse to open, without a keyring, a store whose data keys are wrapped by master keys: it would write
    plaintext among sealed payloads and could read none of them.

    Raises:
        ConfigurationError: ``master_ids`` (those the stored data keys need) is not empty.
    """
    if master_ids:
        raise ConfigurationError(NO_KEYRING)


def refuse_sealed(records: Iterable[RecordedEvent]) -> None:
    """Refuse records read without a keyring whose payloads are sealed (a process with keys wrote them after
    this one opened the store), instead of failing later to decode ciphertext as JSON.

    Raises:
        ConfigurationError: a payload is sealed.
    """
    for record in records:  # on every read without a keyring: the first byte alone, inline
        data = record.data
        if data and data[0] == FORMAT:
            raise ConfigurationError(NO_KEYRING)


def request_hash(sealer: Sealer | None, material: bytes) -> str:
    """What an idempotency record stores to recognise a command: an HMAC when the store encrypts; else a plain
    SHA-256 (without a keyring there is no secret to key it with, and the payloads it could confirm are stored in
    plaintext anyway)."""
    if sealer is None:
        return hashlib.sha256(material).hexdigest()
    return sealer.request_hash(material)


class Sealer:
    """Seals and opens payloads with a keyring's data keys."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._request_mac: Any = None
        self._pinned: Mapping[str, Any] = {}

    def pinned(self, key_ids: Iterable[str]) -> Sealer:
        """A sealer that keeps the ciphers of ``key_ids`` opened now, whatever happens to the keyring meanwhile: a
        batch prepares its keys, then awaits its reads, during which a reconnected listener may clear the
        keyring (keys forgotten while it was away). What a batch seals with a key forgotten meanwhile is as unreadable
        as the rest of that subject's events: its key is gone."""
        twin = Sealer(self.keyring)
        twin._request_mac = self._request_mac
        twin._pinned = {k: c for k in key_ids if (c := self.keyring.cipher(k)) is not None}
        return twin

    def use_request_key(self, stored: WrappedKey) -> None:
        """Key request hashes with the stored ``REQUEST_KEY`` (kept apart from the keyring, which may be
        cleared)."""
        master_id, wrapped = stored
        self._request_mac = hmac.new(self.keyring.master.unwrap(master_id, REQUEST_KEY, wrapped), None, "sha256")

    def request_hash(self, material: bytes) -> str:
        """The HMAC-SHA256 of ``material`` under the store's request key, in hex.

        Raises:
            StoreError: the store is not open (the key is read when it opens).
        """
        if self._request_mac is None:
            raise StoreError("the event store is not open; call `await store.open()` first")
        mac = self._request_mac.copy()
        mac.update(material)
        return str(mac.hexdigest())

    @staticmethod
    def snapshot_key(keys: Sequence[str]) -> str | None:
        """The key a snapshot is sealed with, given the data keys of what its state was folded from (the previous
        snapshot's, then those of every later event of its stream): the stream's one subject's key; the last one
        when no event names a subject (the state then holds nothing the module key does not already seal). None,
        and no snapshot, when there is nothing to go by, or several subjects: sealed with one, the snapshot would
        stay readable when another is forgotten."""
        subjects = {key for key in keys if key.startswith(_SUBJECT)}
        if len(subjects) == 1:
            return subjects.pop()
        return keys[-1] if keys and not subjects else None

    @staticmethod
    def result_key(appends: Sequence[EncodedAppend], module: str) -> str:
        """The key an idempotency result is sealed with: that of the first event of the commit that names a
        subject, else of its first event, else the key of the command's ``module``."""
        first = None
        for append in appends:
            for key in append.keys:
                if key.startswith(_SUBJECT):
                    return key
                first = first or key
        return first or f"module:{module or 'citadel'}"

    def missing(self, key_ids: Iterable[str]) -> set[str]:
        """The key ids neither opened nor known to be forgotten yet."""
        return {k for k in key_ids if not self.keyring.known(k)}

    def learn(self, stored: Mapping[str, WrappedKey]) -> None:
        """Open keys read from the store (an empty wrapped key is a forgotten one's tombstone)."""
        for key_id, (master_id, wrapped) in stored.items():
            if not self.keyring.known(key_id):
                self.keyring.open(key_id, master_id, wrapped)

    def _cipher(self, key_id: str) -> Any:
        cipher = self._pinned.get(key_id) or self.keyring.cipher(key_id)
        if cipher is None:
            if key_id in self.keyring.forgotten:
                raise PayloadForgotten(f"{key_id} was forgotten: nothing more can be stored about it")
            raise LookupError(f"data key {key_id!r} was not prepared before sealing")
        return cipher

    def seal_event(self, key_id: str, payload: bytes, stream_id: str, version: int, type_name: str) -> bytes:
        """Seal an event's payload, bound to its row.

        Raises:
            PayloadForgotten: the event's subject was forgotten.
        """
        return seal(self._cipher(key_id), key_id, payload, associated_data(stream_id, version, type_name))

    def seal_snapshot(self, key_id: str, snapshot: Snapshot) -> Snapshot:
        """A copy of ``snapshot`` with its state sealed."""
        cipher = self._cipher(key_id)
        sealed = seal(cipher, key_id, snapshot.data, snapshot_associated_data(snapshot.stream_id, snapshot.version))
        return Snapshot(snapshot.stream_id, snapshot.version, snapshot.state_version, sealed)

    def seal_result(self, key_id: str, record: IdempotencyRecord) -> bytes:
        """An idempotency record's result, sealed and bound to its key."""
        return seal(self._cipher(key_id), key_id, record.result, _result_data(record.key))

    def open_result(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """The record with its result opened; ``forgotten``, without a result, when its key is gone.

        Raises:
            TamperedPayload: the result does not authenticate.
        """
        if not is_sealed(record.result):
            return record
        cipher = self.keyring.cipher(key_id_of(record.result))
        if cipher is None:
            return msgspec.structs.replace(record, result=b"", forgotten=True)
        where = f"the result of idempotency key {record.key!r}"
        return msgspec.structs.replace(
            record, result=open_sealed(cipher, record.result, _result_data(record.key), where)
        )

    def seal_error(self, key_id: str, consumer: str, event_id: str, error: str) -> bytes | None:
        """A dead letter's error text sealed with its event's key, or None when that key is not open."""
        cipher = self.keyring.cipher(key_id)
        return None if cipher is None else seal(cipher, key_id, error.encode(), _error_data(consumer, event_id))

    def open_error(self, consumer: str, event_id: str, sealed: bytes) -> str | None:
        """A dead letter's sealed error text, or None when its key is gone.

        Raises:
            TamperedPayload: the text does not authenticate.
        """
        cipher = self.keyring.cipher(key_id_of(sealed))
        if cipher is None:
            return None
        where = f"the error of the dead letter of {consumer} for event {event_id}"
        return open_sealed(cipher, sealed, _error_data(consumer, event_id), where).decode()

    @staticmethod
    def sealed_keys(payloads: Iterable[bytes]) -> set[str]:
        """The key ids that sealed payloads name."""
        return {key_id_of(p) for p in payloads if is_sealed(p)}

    def open_records(self, records: Iterable[RecordedEvent]) -> None:
        """Replace sealed payloads by their plaintext; a record whose key is gone becomes ``forgotten``.

        Raises:
            TamperedPayload: a payload does not authenticate.
        """
        for record in records:
            data = record.data
            if not is_sealed(data):
                continue
            key_id = record.key_id = key_id_of(data)
            cipher = self.keyring.cipher(key_id)
            if cipher is None:
                record.forgotten = True
                record.data = b""
                continue
            where = f"event {record.position} ({record.stream_id} v{record.version})"
            record.data = open_sealed(
                cipher, data, associated_data(record.stream_id, record.version, record.type), where
            )

    def open_snapshot(self, snapshot: Snapshot) -> Snapshot | None:
        """The snapshot with its state opened, or None when its key is gone."""
        if not is_sealed(snapshot.data):
            return snapshot
        cipher = self.keyring.cipher(key_id_of(snapshot.data))
        if cipher is None:
            return None
        where = f"the snapshot of {snapshot.stream_id} v{snapshot.version}"
        data = open_sealed(cipher, snapshot.data, snapshot_associated_data(snapshot.stream_id, snapshot.version), where)
        return Snapshot(snapshot.stream_id, snapshot.version, snapshot.state_version, data)


def _result_data(key: str) -> bytes:
    return f"idempotency\x00{key}".encode()


def _error_data(consumer: str, event_id: str) -> bytes:
    return f"dead-letter\x00{consumer}\x00{event_id}".encode()
