"""Service keys, and the tag that authenticates every message between services.

Services that share keys sign what they send with HMAC-SHA256 under the current key and verify what they
receive under any key they hold: a header that claims an actor, a role or a stream proves nothing unless the tag
over it verifies. The tag covers a canonical form of the message, every part length-prefixed so that no two
different messages encode alike::

    len | "citadel-v1" | len | kind | len | NATS subject | len | SHA-256 of the body | len | field | ...

The fields (type, actor, roles, correlation, ...) and their order are ``citadel.messaging.wire``'s.

``derive`` turns a service key into a key for one purpose (HKDF-SHA256): a data key travels between services
wrapped under one (``citadel.messaging.keyshare``).

**Rotation** without a refused message: give every service the new key second (``old:…,new:…``: it verifies
but does not sign yet), then first (``new:…,old:…``, what ``rotated`` returns), then drop the old one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from citadel.errors import ConfigurationError, UnverifiedMessage
from citadel.security.keyfiles import create_private, keys_document, read_keys

__all__ = ["KEY_BYTES", "ServiceKeys", "canonical"]

KEY_BYTES = 32
_VERSION = b"citadel-v1"
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def canonical(*parts: str | bytes) -> bytes:
    """``parts`` as one byte string, each prefixed with its length (4 bytes, big-endian), so that the encoding
    of a sequence of parts is unique to it."""
    out = bytearray()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out += len(data).to_bytes(4, "big")
        out += data
    return bytes(out)


class ServiceKeys:
    """The keys services share, by key id: the ``current`` one signs, every one verifies.

    Raises:
        ConfigurationError: no key, a key id that is not 1 to 64 of ``A-Z a-z 0-9 . _ -``, or a key that is
            not 32 bytes.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigurationError("service keys need at least one key")
        for key_id, key in keys:
            if not _KEY_ID.fullmatch(key_id):
                raise ConfigurationError(f"service key id {key_id!r} must be 1 to 64 of A-Z a-z 0-9 . _ -")
            if len(key) != KEY_BYTES:
                raise ConfigurationError(f"service key {key_id!r} must be {KEY_BYTES} random bytes, it has {len(key)}")
        self._keys = dict(keys)
        if len(self._keys) != len(keys):
            raise ConfigurationError("two service keys share a key id")
        self.current = keys[0][0]

    def __repr__(self) -> str:  # never the keys themselves
        return f"ServiceKeys(current={self.current!r}, ids={list(self._keys)!r})"

    def __iter__(self) -> Iterator[str]:
        """The key ids, the current one first."""
        return iter(self._keys)

    @classmethod
    def generate(cls) -> ServiceKeys:
        """One new random key."""
        return cls([(_new_id(), secrets.token_bytes(KEY_BYTES))])

    def rotated(self) -> ServiceKeys:
        """New keys: a fresh random key signs; the current one still verifies; older ones are dropped."""
        return ServiceKeys([(_new_id(), secrets.token_bytes(KEY_BYTES)), (self.current, self._keys[self.current])])

    @classmethod
    def parse(cls, text: str) -> ServiceKeys:
        """Keys from ``id:base64,id:base64`` (the ``service_key`` setting); the first one signs.

        Raises:
            ConfigurationError: the text is not in that form.
        """
        keys = []
        for item in text.split(","):
            key_id, _, encoded = item.strip().partition(":")
            try:
                keys.append((key_id, base64.b64decode(encoded, validate=True)))
            except (binascii.Error, ValueError) as exc:
                raise ConfigurationError(
                    f"service_key must be id:base64 of {KEY_BYTES} random bytes, comma-separated; {key_id!r} is not"
                ) from exc
        return cls(keys)

    def setting(self) -> str:
        """The keys as the ``service_key`` setting takes them (``CITADEL_SERVICE_KEY``): secret, handle so."""
        return ",".join(f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in self._keys.items())

    @classmethod
    def load(cls, path: Path) -> ServiceKeys:
        """Read a key file written by ``create`` or ``save``.

        Raises:
            ConfigurationError: the file is missing, malformed, or open to other users (the message says to run
                ``chmod 600`` on it).
        """
        current, keys = read_keys(path, "service key")
        return cls([(current, keys.pop(current)), *keys.items()])

    def _document(self) -> str:
        return keys_document(self.current, self._keys)

    def create(self, path: Path) -> bool:
        """Write the keys to the new file ``path`` (mode 0600); False, writing nothing, when it exists."""
        return create_private(path, self._document())

    def save(self, path: Path) -> None:
        """Write the keys to ``path`` (mode 0600), replacing it at once if it exists (rotation)."""
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        if not create_private(temporary, self._document()):
            raise ConfigurationError(f"cannot write {temporary}: it exists")
        temporary.replace(path)

    def sign(self, kind: str, subject: str, body: bytes, fields: Sequence[str | bytes]) -> str:
        """The tag of a message under the current key: ``<key id>:<base64url HMAC-SHA256>``."""
        return f"{self.current}:{_tag(self._keys[self.current], kind, subject, body, fields)}"

    def derive(self, key_id: str, purpose: bytes) -> bytes:
        """A 32-byte key for ``purpose``, derived from the service key ``key_id`` with HKDF-SHA256: whoever holds
        that service key derives the same key, nobody else can.

        Raises:
            UnverifiedMessage: the key id is not held here.
        """
        key = self._keys.get(key_id)
        if key is None:
            raise UnverifiedMessage(f"no service key {key_id[:64]!r} here", reason="unknown-key", key_id=key_id)
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_VERSION, info=purpose).derive(key)

    def verify(self, kind: str, subject: str, body: bytes, fields: Sequence[str | bytes], signature: str) -> str:
        """Check ``signature`` (as ``sign`` makes it) over the message, in constant time; return its key id.

        Raises:
            UnverifiedMessage: the key id is not held here, or the tag does not match.
        """
        key_id, _, tag = signature.partition(":")
        key = self._keys.get(key_id)
        if key is None:
            raise UnverifiedMessage(f"signed with unknown key id {key_id[:64]!r}", reason="unknown-key", key_id=key_id)
        expected = _tag(key, kind, subject, body, fields).encode()
        if not hmac.compare_digest(expected, tag.encode(errors="replace")):
            raise UnverifiedMessage("the signature does not match the message", reason="bad-signature", key_id=key_id)
        return key_id


def _tag(key: bytes, kind: str, subject: str, body: bytes, fields: Sequence[str | bytes]) -> str:
    message = canonical(_VERSION, kind, subject, hashlib.sha256(body).digest(), *fields)
    mac = hmac.digest(key, message, "sha256")
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _new_id() -> str:
    return f"s-{secrets.token_hex(4)}"
