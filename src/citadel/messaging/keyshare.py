"""Data keys shared between services, so that personal data never crosses the broker in plaintext.

* **Sealed on the wire.** An integration event whose type declares a data subject
  (``class AccountOpened(Event, subject="account_id")``) leaves its service sealed with that subject's data key:
  the AES-256-GCM envelope of encryption at rest (``citadel.security.encryption``), bound to the event's stream
  id, version and type, which travel in its signed headers (``Citadel-Stream``, ``Citadel-Version``,
  ``Citadel-Type``). JetStream holds the envelope, never the plaintext.
* **Asked for, not broadcast.** A service that imports such an event opens it with the subject's key from its own
  key table, or else asks the exporting module's service for it on ``<ns>.keys.<module>``: a question of kind
  ``key`` whose body is the key id, signed like every request, and refused when it does not verify, is stale or
  is replayed. The signed answer carries the key wrapped (AES-256-GCM) under a key derived with HKDF-SHA256 from
  the service key the question was signed with, the question's message id and the key id: on the wire a key is
  only ever wrapped, and JetStream never holds it. The importing service keeps it in its own key table, wrapped by
  its own master key, and its store seals the imported events with it, so forgetting there deletes that copy
  (``citadel.messaging.forgetting``).
* **Only subjects' keys** (``subject:<id>``) are given, never a module's. A forgotten key is answered
  ``PayloadForgotten``, and the event is not imported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from citadel.errors import (
    AccessDenied,
    ConfigurationError,
    InvalidMessage,
    NotFound,
    PayloadForgotten,
    ServiceUnavailable,
    TamperedPayload,
    UnverifiedMessage,
)
from citadel.messaging import wire
from citadel.messaging.signing import ServiceKeys, canonical
from citadel.security.encryption import key_id_of, open_sealed, seal
from citadel.store.encoding import associated_data
from citadel.store.shared_keys import keep_data_key, read_data_keys

if TYPE_CHECKING:
    from citadel.messaging.ports import Broker
    from citadel.security.encryption import Keyring
    from citadel.store.base import EventStore, RecordedEvent

__all__ = ["SUBJECT", "KeyShare", "unwrap_from_transit", "wrap_for_transit"]

SUBJECT = "subject:"
"""The prefix of the data keys that may be shared: those of data subjects."""
_MAX_KEY_ID = 256
_TRANSPORT = b"citadel-key-transport-v1"
_NONCE = 12


def _transport(keys: ServiceKeys, service_key: str, question_id: str, key_id: str) -> AESGCM:
    return AESGCM(keys.derive(service_key, canonical(_TRANSPORT, question_id, key_id)))


def wrap_for_transit(keys: ServiceKeys, service_key: str, question_id: str, key_id: str, data_key: bytes) -> bytes:
    """``data_key`` wrapped for the question ``question_id`` that was signed under the service key ``service_key``."""
    nonce = os.urandom(_NONCE)
    return nonce + _transport(keys, service_key, question_id, key_id).encrypt(nonce, data_key, key_id.encode())


def unwrap_from_transit(keys: ServiceKeys, service_key: str, question_id: str, key_id: str, wrapped: bytes) -> bytes:
    """The data key that ``wrap_for_transit`` wrapped.

    Raises:
        UnverifiedMessage: it does not open: altered, wrapped for another question or under another service key.
    """
    try:
        return _transport(keys, service_key, question_id, key_id).decrypt(
            wrapped[:_NONCE], wrapped[_NONCE:], key_id.encode()
        )
    except (InvalidTag, ValueError):
        raise UnverifiedMessage(
            f"the data key {key_id[:80]!r} in the answer does not open", reason="malformed"
        ) from None


def _sealed_key_id(data: bytes) -> str:
    """The id of the data key a sealed payload names.

    Raises:
        InvalidMessage: it names none, or not a subject's.
    """
    try:
        key_id = key_id_of(data) if len(data) > 2 + data[1] else ""
    except (IndexError, UnicodeDecodeError):
        key_id = ""
    if not key_id.startswith(SUBJECT):
        raise InvalidMessage("a sealed event must name the data key of its subject (subject:<id>)")
    return key_id


class KeyShare:
    """The data keys of this service's store, as the services around it need them: it seals what the relay
    publishes, gives a subject's key to a service that asks, and opens what the inbox imports."""

    def __init__(self, broker: Broker, store: EventStore, keyring: Keyring) -> None:
        self.broker = broker
        self.store = store
        self.master = keyring.master
        self.given = 0
        """Keys given to other services."""
        self.received = 0
        """Keys received from other services (and kept)."""

    def subject(self, module: str) -> str:
        """Where the service of ``module`` is asked for keys: ``<ns>.keys.<module>``."""
        return f"{self.broker.prefix}.keys.{module}"

    @property
    def _service_keys(self) -> ServiceKeys:
        if self.broker.keys is None:
            raise ConfigurationError("sharing data keys needs the broker's service keys")
        return self.broker.keys

    # -- the service that exports the events ---------------------------------------------------------------

    async def seal(self, records: Sequence[RecordedEvent]) -> dict[str, bytes]:
        """The payloads of ``records`` (opened, of types that declare a subject) sealed with their subjects' keys,
        by event id; a record whose key was deleted since it was read is left out."""
        registry = self.store.registry
        key_ids = {r.event_id: registry.key_id(r.event, registry.named(r.type)) for r in records}
        ciphers = await self._ciphers(set(key_ids.values()))
        sealed = {}
        for r in records:
            key_id = key_ids[r.event_id]
            cipher = ciphers.get(key_id)
            if cipher is not None:
                sealed[r.event_id] = seal(cipher, key_id, r.data, associated_data(r.stream_id, r.version, r.type))
        return sealed

    async def _ciphers(self, key_ids: Collection[str]) -> dict[str, AESGCM]:
        stored = await read_data_keys(self.store, key_ids)
        return {k: AESGCM(self.master.unwrap(m, k, w)) for k, (m, w) in stored.items() if w}

    async def serve(self, module: str) -> None:
        """Give subjects' data keys to the services that ask ``module``'s service for them."""
        await self.broker.answer(wire.KEY, self.subject(module), module, self._give)

    async def _give(self, body: bytes, question: wire.Verified) -> tuple[bytes, dict[str, str]]:
        key_id = body.decode(errors="replace")
        question_id = question.get(wire.MESSAGE_ID, "")
        if not key_id.startswith(SUBJECT) or len(key_id) > _MAX_KEY_ID or not question_id:
            raise AccessDenied("only a data subject's key (subject:<id>) is given, to a question with a message id")
        stored = (await read_data_keys(self.store, [key_id])).get(key_id)
        if stored is None:
            raise NotFound(f"no data key {key_id} here")
        master_id, wrapped = stored
        if not wrapped:
            return b"", wire.error_headers(PayloadForgotten(key_id))
        service_key = question[wire.SIGNATURE].partition(":")[0]
        data_key = self.master.unwrap(master_id, key_id, wrapped)
        self.given += 1
        return wrap_for_transit(self._service_keys, service_key, question_id, key_id, data_key), {}

    # -- a service that imports them -------------------------------------------------------------------------

    async def open(self, module: str, type_name: str, headers: wire.Verified, data: bytes) -> bytes | None:
        """The plaintext of a sealed event of ``module`` that arrived with the verified ``headers``; None when its
        subject was forgotten, here or by its owner.

        Raises:
            InvalidMessage: it names no subject's key, or no stream and version.
            TamperedPayload: it does not open with the subject's key.
            ServiceUnavailable: the key is not here and the exporting service does not give it (yet).
        """
        key_id = _sealed_key_id(data)
        stream, version = headers.get(wire.STREAM, ""), headers.get(wire.VERSION, "")
        if not stream or not (version.isascii() and version.isdigit() and len(version) <= 19):
            raise InvalidMessage(f"a sealed {type_name} must carry its stream id and version")
        associated, where = associated_data(stream, int(version), type_name), f"{type_name} of {stream} v{version}"
        stored = (await read_data_keys(self.store, [key_id])).get(key_id)
        if stored is not None:
            master_id, wrapped = stored
            if not wrapped:
                return None  # forgotten here
            # A key of this id that does not open it is this service's own for the same subject: ask for the owner's.
            with contextlib.suppress(TamperedPayload):
                return open_sealed(AESGCM(self.master.unwrap(master_id, key_id, wrapped)), data, associated, where)
        data_key = await self.request(module, key_id)
        if data_key is None:
            return None
        if stored is None:
            await keep_data_key(self.store, key_id, *self.master.wrap(key_id, data_key))
            self.received += 1
        return open_sealed(AESGCM(data_key), data, associated, where)

    async def request(self, module: str, key_id: str) -> bytes | None:
        """Ask the service of ``module`` for the data key ``key_id``; None when it was forgotten there.

        Raises:
            ServiceUnavailable: no service answers.
            UnverifiedMessage: the answer does not verify or its key does not open, or that service refused the
                question's signature.
            The error that service answered with (``NotFound``, ``AccessDenied``), rebuilt.
        """
        asked = await self.broker.ask(wire.KEY, self.subject(module), key_id.encode())
        if asked is None:
            raise ServiceUnavailable(f"the service of {module} did not give a data key of an event it published")
        body, answer, question = asked
        error = answer.get(wire.ERROR)
        if error == PayloadForgotten.__name__:
            return None
        if error:
            raise wire.error_from(error, body.decode(errors="replace"))
        service_key = question[wire.SIGNATURE].partition(":")[0]
        return unwrap_from_transit(self._service_keys, service_key, question[wire.MESSAGE_ID], key_id, body)
