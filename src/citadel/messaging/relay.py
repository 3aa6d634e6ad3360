"""The outbox relay: follows the local log and publishes the public events of this service's modules to JetStream.

The event store is the outbox: the relay reads the log from its checkpoint, publishes, and moves its checkpoint
only once the broker acknowledged every message of the page. At least once, in log order.

* An event whose type declares no data subject carries no personal data by that declaration: it travels as
  stored, in plaintext JSON.
* An event whose type declares a data subject travels sealed with the subject's data key
  (``citadel.messaging.keyshare``); one whose key was deleted meanwhile is not published at all.
* ``SubjectForgotten`` that this service recorded itself is announced to the services that imported the
  subject's events (``citadel.messaging.forgetting``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from citadel.errors import ConfigurationError
from citadel.messages import SubjectForgotten, message_name
from citadel.messaging import wire
from citadel.messaging.consumer import Consumer
from citadel.metrics import metrics

if TYPE_CHECKING:
    from citadel.messaging.forgetting import Announcer
    from citadel.messaging.keyshare import KeyShare
    from citadel.messaging.ports import Broker, Outgoing
    from citadel.store.base import EventStore, RecordedEvent

__all__ = ["OutboxRelay"]

FORGOTTEN = message_name(SubjectForgotten)


class OutboxRelay(Consumer):
    """Follows the local log and publishes the public events of this service's modules to JetStream.

    ``sealed`` names the exported types that declare a data subject: they go out sealed by ``keys``, which must
    then be given. ``announcer`` announces the subjects this service forgets.
    """

    def __init__(
        self,
        store: EventStore,
        broker: Broker,
        exported: frozenset[str],
        *,
        owner: str,
        lease_ttl: float = 5.0,
        sealed: Collection[str] = (),
        keys: KeyShare | None = None,
        announcer: Announcer | None = None,
    ) -> None:
        if sealed and keys is None:
            raise ConfigurationError(
                f"{', '.join(sorted(sealed))} declare a data subject: the relay needs the data keys to seal them"
            )
        super().__init__("citadel.outbox", store, owner=owner, lease_ttl=lease_ttl)
        self.broker = broker
        self.exported = exported
        self.sealed = frozenset(sealed)
        self.keys = keys
        self.announcer = announcer
        self.types = exported | {FORGOTTEN} if announcer is not None else exported
        self.published = 0
        self._published = metrics().relay_published

    async def process(self, records: Sequence[RecordedEvent], upto: int) -> None:
        kept = [r for r in records if not r.forgotten and (r.type in self.exported or r.type == FORGOTTEN)]
        to_seal = [r for r in kept if r.type in self.sealed]
        sealed = await self.keys.seal(to_seal) if to_seal and self.keys is not None else {}
        outgoing: list[Outgoing] = []
        for r in kept:
            if r.type == FORGOTTEN:
                if self.announcer is not None:
                    outgoing.extend(self.announcer.announcements(r))
            elif r.type not in self.sealed:
                outgoing.append(_traced(self.broker.event_message(r), r))
            elif r.event_id in sealed:  # else its subject was forgotten since it was read: it never leaves
                outgoing.append(_traced(self.broker.event_message(r, sealed[r.event_id]), r))
        if outgoing:
            await self.broker.publish(outgoing)
            self.published += len(outgoing)
            self._published.inc(len(outgoing))
        await self.store.save_checkpoint(self.name, upto, self.lease)
        self.saved(upto)


def _traced(message: Outgoing, record: RecordedEvent) -> Outgoing:
    """``message`` carrying the ``traceparent`` stored with its event, if any: the importing inbox links its span to
    the command that wrote the event (signed apart, see ``citadel.messaging.wire``)."""
    if record.traceparent:
        message[3][wire.TRACEPARENT] = record.traceparent
    return message
