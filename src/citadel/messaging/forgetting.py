"""Forgetting across services: a data subject forgotten by its module's service is forgotten by every service that
imports events of that module.

* **Announced.** ``CommandContext.forget`` deletes the subject's data key and appends ``SubjectForgotten`` in the
  same commit. The outbox relay publishes it, after the subject's events (log order), on
  ``<ns>.forgotten.<module>`` for each local module that exports events declaring a subject: kind ``forgotten``,
  signed like an event, with ``Nats-Msg-Id`` ``<event id>.<module>`` and the body ``{"key_ids": ["subject:<id>"]}``:
  key ids only, never personal data. It is kept in JetStream with the events, so a service that is down when it
  is published imports it when it is back.
* **Carried out.** The inbox of every service that imports events of that module takes these messages too, in
  order with the module's events. Each one is verified (one that does not verify is parked, like an event, and
  deletes nothing); then, in one transaction with its message id as the inbox record, the service deletes the
  keys in its own store (the copies it received, or a tombstone where it never had one, so none can arrive
  later) and appends ``SubjectForgotten``, and the local modules' own subclasses of it, to its log: its
  projections hear of it like any event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from citadel.errors import IdempotencyConflict, InvalidMessage
from citadel.messages import Event, SubjectForgotten, message_name
from citadel.messaging import wire
from citadel.messaging.keyshare import SUBJECT
from citadel.store.base import Commit, IdempotencyRecord, Metadata, StreamAppend

if TYPE_CHECKING:
    from citadel.messaging.ports import Broker, Outgoing
    from citadel.store.base import EventStore, RecordedEvent

__all__ = ["Announcement", "Announcer", "Forgetting"]

FORGOTTEN = message_name(SubjectForgotten)
ForgottenEvents = Callable[[str, str], list[Event]]
"""``(subject, module)`` → the events that record in this service's log that ``module`` forgot ``subject``."""


class Announcement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a message on ``<ns>.forgotten.<module>``: the ids of the deleted data keys."""

    key_ids: Annotated[list[Annotated[str, msgspec.Meta(max_length=256)]], msgspec.Meta(max_length=1000)]


_decode = msgspec.json.Decoder(Announcement).decode


class Announcer:
    """Turns the ``SubjectForgotten`` events this service recorded into the messages the outbox relay publishes.

    ``exporters`` are the local modules whose public events declare a data subject (the services that import them
    may hold the subjects' keys); ``local`` every module this service runs.
    """

    def __init__(self, broker: Broker, exporters: Collection[str], local: Collection[str]) -> None:
        self.broker = broker
        self.exporters = sorted(exporters)
        self.local = frozenset(local)

    def subject(self, module: str) -> str:
        """Where ``module``'s service announces forgotten subjects."""
        return f"{self.broker.prefix}.forgotten.{module}"

    def announcements(self, record: RecordedEvent) -> list[Outgoing]:
        """The messages that announce ``record`` (a ``SubjectForgotten``); none for one this service imported."""
        event = record.event
        if not isinstance(event, SubjectForgotten) or event.module not in self.local:
            return []
        body = msgspec.json.encode(Announcement(key_ids=[event.key_id]))
        return [
            (
                wire.FORGOTTEN,
                self.subject(module),
                body,
                {
                    wire.EVENT_ID: f"{record.event_id}.{module}",
                    wire.TYPE: FORGOTTEN,
                    wire.CORRELATION: record.correlation_id or "",
                    wire.ACTOR: record.actor or "",
                },
            )
            for module in self.exporters
        ]


class Forgetting:
    """Carries out, in this service's store, the announcements of the modules whose events it imports.

    ``events`` gives the events to append for a forgotten subject; ``encrypting`` tells whether the store has data
    keys to delete (without encryption at rest it imports no event that declares a subject).
    """

    def __init__(self, broker: Broker, store: EventStore, events: ForgottenEvents, *, encrypting: bool) -> None:
        self.broker = broker
        self.store = store
        self.events = events
        self.encrypting = encrypting
        self.forgotten = 0
        """Subjects forgotten here because another service announced it."""

    def subject(self, module: str) -> str:
        """Where ``module``'s service announces forgotten subjects."""
        return f"{self.broker.prefix}.forgotten.{module}"

    async def receive(self, message: Any, module: str, stream: str) -> None:
        """Verify an announcement of ``module`` and carry it out, appending to ``stream``; once in effect.

        Raises:
            UnverifiedMessage: it does not verify (nothing is deleted).
            InvalidMessage: its body is not an announcement.
        """
        headers = self.broker.verified(wire.FORGOTTEN, message.subject, message.data, message.headers or {})
        try:
            key_ids = _decode(message.data).key_ids
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InvalidMessage(f"a malformed announcement of forgotten subjects: {exc}") from exc
        subjects = list(dict.fromkeys(k.removeprefix(SUBJECT) for k in key_ids if k.startswith(SUBJECT)))
        if not subjects:
            return
        message_id = headers.get(wire.EVENT_ID, "")
        commit = Commit(
            [StreamAppend(stream, [e for subject in subjects for e in self.events(subject, module)])],
            Metadata(
                correlation_id=headers.get(wire.CORRELATION) or None,
                causation_id=message_id,
                actor=headers.get(wire.ACTOR) or None,
            ),
            idempotency=IdempotencyRecord(f"inbox:{message_id}", "", b"null"),
            forget=subjects if self.encrypting else (),
        )
        try:
            await self.store.commit(commit)
            self.forgotten += len(subjects)
        except IdempotencyConflict:
            pass  # carried out before: one effect
