"""What a store does to encrypt at rest, whatever its backend: seal rows as it writes them, open records as it
reads them. The backend only fetches and writes wrapped keys (see ``citadel.security.encryption``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from citadel.errors import PayloadForgotten
from citadel.security.encryption import Keyring, is_sealed, key_id_of, open_sealed, seal
from citadel.store.base import RecordedEvent, Snapshot
from citadel.store.encoding import EncodedAppend, associated_data, snapshot_associated_data

__all__ = ["Sealer", "WrappedKey"]

WrappedKey = tuple[str, bytes]
"""A stored data key: ``(id of the master key that wrapped it, wrapped bytes)``."""


class Sealer:
    """Seals and opens payloads with a keyring's data keys."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    @staticmethod
    def snapshot_key(appends: Sequence[EncodedAppend], stream_id: str) -> str | None:
        """The key a snapshot of ``stream_id`` is sealed with: that of the stream's last event in the commit."""
        for append in reversed(appends):
            if append.stream_id == stream_id and append.keys:
                return append.keys[-1]
        return None

    def missing(self, key_ids: Iterable[str]) -> set[str]:
        """The key ids neither opened nor known to be forgotten yet."""
        return {k for k in key_ids if not self.keyring.known(k)}

    def learn(self, stored: Mapping[str, WrappedKey]) -> None:
        """Open keys read from the store (an empty wrapped key is a forgotten one's tombstone)."""
        for key_id, (master_id, wrapped) in stored.items():
            if not self.keyring.known(key_id):
                self.keyring.open(key_id, master_id, wrapped)

    def _cipher(self, key_id: str) -> Any:
        cipher = self.keyring.cipher(key_id)
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
            cipher = self.keyring.cipher(key_id_of(data))
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
