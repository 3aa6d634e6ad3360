"""Encryption at rest: AES-256-GCM over every stored payload, with a data key per data subject.

* **Envelope.** Each payload is sealed with a data key: a fresh random 96-bit nonce, and the stream id, the
  version and the event type bound as associated data, so a payload copied into another row does not open.
  The stored bytes are ``0x01 | len(key id) | key id | nonce | ciphertext and tag``.
* **Data keys** are 256-bit random keys, one per data subject (an event type names the field that holds its
  subject: ``class UserRegistered(Event, subject="user_id")`` → key ``subject:<user id>``) and one per module
  for the other events (``module:<name>``). They are stored wrapped (AES-256-GCM again) by a master key,
  in the store's key table, created in the same transaction as the first event that needs them.
* **Crypto-shredding.** Forgetting a subject deletes its data key: its events stay in the log, but their
  payloads can never be opened again (``RecordedEvent.forgotten``).
* **Rotation.** A new master key re-wraps the data keys; no event is rewritten.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from citadel.errors import ConfigurationError, TamperedPayload
from citadel.security.keyfiles import create_private, keys_document, read_keys

__all__ = ["FORMAT", "Keyring", "MasterKeys", "is_sealed", "key_id_of", "open_sealed", "seal"]

FORMAT = 0x01
_NONCE = 12
_KEY = 32


def seal(cipher: AESGCM, key_id: str, payload: bytes, associated: bytes) -> bytes:
    """Encrypt ``payload`` under ``cipher`` (the data key ``key_id``), binding ``associated``."""
    nonce = os.urandom(_NONCE)
    name = key_id.encode()
    return bytes((FORMAT, len(name))) + name + nonce + cipher.encrypt(nonce, payload, associated)


def is_sealed(data: bytes) -> bool:
    """Whether stored bytes are a sealed payload (plain payloads are JSON objects, starting with ``{``)."""
    return bool(data) and data[0] == FORMAT


def key_id_of(data: bytes) -> str:
    """The data key id a sealed payload names."""
    return data[2 : 2 + data[1]].decode()


def open_sealed(cipher: AESGCM, data: bytes, associated: bytes, where: str) -> bytes:
    """Decrypt a sealed payload.

    Raises:
        TamperedPayload: the bytes were changed, or belong to another row (``where`` says which).
    """
    start = 2 + data[1]
    try:
        return cipher.decrypt(data[start : start + _NONCE], data[start + _NONCE :], associated)
    except InvalidTag:
        raise TamperedPayload(f"the stored payload of {where} does not authenticate: it was altered or moved") from None


class MasterKeys:
    """The master keys that wrap data keys: several may unwrap, the ``current`` one wraps."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ConfigurationError(f"the current master key {current!r} is not among the keys")
        for key_id, key in keys.items():
            if len(key) != _KEY:
                raise ConfigurationError(f"master key {key_id!r} must be 32 bytes (AES-256), it has {len(key)}")
        self.keys = dict(keys)
        self.current = current
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}

    @classmethod
    def generate(cls) -> MasterKeys:
        """A new set with one random key."""
        key_id = f"m-{secrets.token_hex(4)}"
        return cls({key_id: AESGCM.generate_key(bit_length=256)}, key_id)

    @classmethod
    def from_environment(cls, value: str) -> MasterKeys:
        """One key from ``CITADEL_MASTER_KEY`` (base64 of 32 bytes), named ``env``.

        Raises:
            ConfigurationError: the value is not base64 of 32 bytes.
        """
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError("CITADEL_MASTER_KEY must be base64 of 32 random bytes") from exc
        return cls({"env": key}, "env")

    @classmethod
    def load(cls, path: Path) -> MasterKeys:
        """Read a key file written by ``create`` or ``save`` (``citadel keys generate``).

        Raises:
            ConfigurationError: the file is missing, malformed, or open to other users.
        """
        current, keys = read_keys(path, "master key")
        return cls(keys, current)

    def _document(self) -> str:
        return keys_document(self.current, self.keys)

    def create(self, path: Path) -> bool:
        """Write the keys to the new file ``path``, readable by its owner only; False, writing nothing, when it
        exists (its keys may be all that can read a store)."""
        return create_private(path, self._document())

    def save(self, path: Path) -> None:
        """Replace the keys in ``path`` (rotation) at once, the file readable by its owner only."""
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        if not create_private(temporary, self._document()):
            raise ConfigurationError(f"cannot write {temporary}: it exists")
        temporary.replace(path)

    def require(self, master_ids: Collection[str]) -> None:
        """Check that every master key in ``master_ids`` (those the stored data keys use) is held here.

        Raises:
            ConfigurationError: one is missing (the message names it and the settings that give keys).
        """
        missing = sorted(set(master_ids) - set(self.keys))
        if missing:
            which = ", ".join(repr(m) for m in missing)
            keys, them = ("master key", "it") if len(missing) == 1 else ("master keys", "them")
            raise ConfigurationError(
                f"the stored data keys need {keys} {which}, which this process does not hold: give the key file that "
                f"holds {them} (master_key_file, CITADEL_MASTER_KEY_FILE) or the key itself (CITADEL_MASTER_KEY); a "
                "new master key cannot read what the old one wrapped"
            )

    def rotated(self) -> MasterKeys:
        """A copy with a new random key as the current one (the old ones still unwrap)."""
        key_id = f"m-{secrets.token_hex(4)}"
        return MasterKeys({**self.keys, key_id: AESGCM.generate_key(bit_length=256)}, key_id)

    def wrap(self, key_id: str, data_key: bytes) -> tuple[str, bytes]:
        """Wrap a data key with the current master key; return ``(master key id, wrapped bytes)``."""
        nonce = os.urandom(_NONCE)
        return self.current, nonce + self._ciphers[self.current].encrypt(nonce, data_key, key_id.encode())

    def unwrap(self, master_id: str, key_id: str, wrapped: bytes) -> bytes:
        """Unwrap a data key.

        Raises:
            ConfigurationError: the master key that wrapped it is not loaded.
            TamperedPayload: the wrapped key was altered.
        """
        cipher = self._ciphers.get(master_id)
        if cipher is None:
            raise ConfigurationError(f"data key {key_id!r} is wrapped by master key {master_id!r}, which is not loaded")
        try:
            return cipher.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], key_id.encode())
        except InvalidTag:
            raise TamperedPayload(f"the stored data key {key_id!r} does not authenticate") from None


class Keyring:
    """Data keys by id: the keys already opened, and the master keys to open or make more.

    A store asks it for ciphers, and tells it which wrapped keys it read or must write; the keyring never
    touches the database itself. Opened keys are kept as their 32 bytes; the ciphers built from them,
    many times larger, are kept for the ``CIPHERS`` most recently built only, so that memory grows by bytes, not
    kilobytes, per subject (one key per person: millions of them).
    """

    CIPHERS = 4096
    """How many ciphers are kept ready; another key's cipher is rebuilt on use, which is cheap."""

    def __init__(self, master: MasterKeys) -> None:
        self.master = master
        self._keys: dict[str, bytes] = {}
        self._ciphers: dict[str, AESGCM] = {}
        self.forgotten: set[str] = set()

    def cipher(self, key_id: str) -> AESGCM | None:
        """The cipher of an opened data key, or None when it must be read (or was forgotten)."""
        cipher = self._ciphers.get(key_id)
        if cipher is not None:
            return cipher
        key = self._keys.get(key_id)
        if key is None:
            return None
        ciphers = self._ciphers
        if len(ciphers) >= self.CIPHERS:
            with contextlib.suppress(RuntimeError, StopIteration):  # changed by another thread: next time
                ciphers.pop(next(iter(ciphers)), None)  # the oldest built
        cipher = ciphers[key_id] = AESGCM(key)
        return cipher

    def open(self, key_id: str, master_id: str, wrapped: bytes) -> AESGCM | None:
        """Unwrap a stored data key and keep it; an empty ``wrapped`` is the tombstone of a forgotten key
        (None)."""
        if not wrapped:
            self.forgotten.add(key_id)
            return None
        self._keys[key_id] = self.master.unwrap(master_id, key_id, wrapped)
        self._ciphers.pop(key_id, None)
        return self.cipher(key_id)

    def known(self, key_id: str) -> bool:
        """Whether the key was opened or found forgotten (nothing to read from the store about it)."""
        return key_id in self._keys or key_id in self.forgotten

    def create(self, key_id: str) -> tuple[str, bytes]:
        """Make a new data key; return ``(master key id, wrapped key)`` for the store to write. Its cipher is
        kept only once the store has read it back (another process may have won the race to create it)."""
        return self.master.wrap(key_id, AESGCM.generate_key(bit_length=256))

    def mark_forgotten(self, key_ids: Any) -> None:
        """Record that ``key_ids`` were shredded (for good: a tombstone never becomes a key again)."""
        for key_id in key_ids:
            self._keys.pop(key_id, None)
            self._ciphers.pop(key_id, None)
            self.forgotten.add(key_id)

    def drop(self, key_ids: Any) -> None:
        """Forget what is known of ``key_ids`` (they were deleted, or never committed)."""
        for key_id in key_ids:
            self._keys.pop(key_id, None)
            self._ciphers.pop(key_id, None)
            self.forgotten.discard(key_id)

    def clear(self) -> None:
        """Forget every key (another process deleted keys)."""
        self._keys.clear()
        self._ciphers.clear()
        self.forgotten.clear()
