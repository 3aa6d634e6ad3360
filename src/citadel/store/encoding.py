"""Preparing a commit for a backend: events encoded (and given ids) on the caller's thread."""

from __future__ import annotations

from collections.abc import Sequence

from citadel.errors import ConfigurationError
from citadel.ids import new_id
from citadel.messages import Event, EventRegistry, subject_key
from citadel.store.records import Commit

__all__ = ["EncodedAppend", "associated_data", "encode_appends", "forgotten_keys", "snapshot_associated_data"]


class EncodedAppend:
    """An append whose events were already encoded: ``(event_id, type name, schema version, payload)`` each,
    and, when the store encrypts, the id of the data key each event is sealed with."""

    __slots__ = ("encoded", "events", "expected_version", "keys", "stream_id")

    def __init__(
        self,
        stream_id: str,
        events: Sequence[Event],
        encoded: list[tuple[str, str, int, bytes]],
        expected_version: int | None,
        keys: list[str] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.events = events
        self.encoded = encoded
        self.expected_version = expected_version
        self.keys = keys or []


def encode_appends(commit: Commit, registry: EventRegistry, *, keyed: bool = False) -> list[EncodedAppend]:
    """Encode every event of a commit, giving each a new id (and, with ``keyed``, its data key id).

    Raises:
        UnknownEventType: an event's class is not registered.
        InvalidMessage: an event cannot be stored faithfully.
    """
    encode = registry.encode
    appends = []
    for append in commit.appends:
        encoded = []
        keys = []
        for event in append.events:
            name, version, data = encode(event)
            encoded.append((new_id(), name, version, data))
            if keyed:
                keys.append(registry.key_id(event, registry.of(type(event))))
        appends.append(EncodedAppend(append.stream_id, append.events, encoded, append.expected_version, keys))
    return appends


def forgotten_keys(commit: Commit, *, encrypting: bool) -> list[str]:
    """The data keys a commit shreds: those of the subjects it forgets.

    Raises:
        ConfigurationError: it forgets subjects, but the store does not encrypt.
    """
    if commit.forget and not encrypting:
        raise ConfigurationError("forgetting a subject needs encryption at rest: give the store a keyring")
    return [subject_key(subject) for subject in commit.forget]


def associated_data(stream_id: str, version: int, type_name: str) -> bytes:
    """What a sealed event payload is bound to: its row (a payload moved elsewhere does not open)."""
    return f"{stream_id}\x00{version}\x00{type_name}".encode()


def snapshot_associated_data(stream_id: str, version: int) -> bytes:
    """What a sealed snapshot is bound to."""
    return f"snapshot\x00{stream_id}\x00{version}".encode()
