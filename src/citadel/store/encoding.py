"""Preparing a commit for a backend: events encoded (and given ids) on the caller's thread."""

from __future__ import annotations

from collections.abc import Sequence

from citadel.ids import new_id
from citadel.messages import Event, EventRegistry
from citadel.store.base import Commit

__all__ = ["EncodedAppend", "encode_appends"]


class EncodedAppend:
    """An append whose events were already encoded: ``(event_id, type name, schema version, payload)`` each."""

    __slots__ = ("encoded", "events", "expected_version", "stream_id")

    def __init__(
        self,
        stream_id: str,
        events: Sequence[Event],
        encoded: list[tuple[str, str, int, bytes]],
        expected_version: int | None,
    ) -> None:
        self.stream_id = stream_id
        self.events = events
        self.encoded = encoded
        self.expected_version = expected_version


def encode_appends(commit: Commit, registry: EventRegistry) -> list[EncodedAppend]:
    """Encode every event of a commit, giving each a new id.

    Raises:
        UnknownEventType: an event's class is not registered.
        InvalidMessage: an event cannot be stored faithfully.
    """
    encode = registry.encode
    appends = []
    for append in commit.appends:
        encoded = []
        for event in append.events:
            name, version, data = encode(event)
            encoded.append((new_id(), name, version, data))
        appends.append(EncodedAppend(append.stream_id, append.events, encoded, append.expected_version))
    return appends
