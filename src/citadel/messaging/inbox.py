"""The inbox of a service: the integration events its own consumers need, imported into its own log.

The inbox is a durable JetStream consumer. Each event's signature is verified first: one that does not verify
(a forgery, or a key this service does not hold yet) is never imported; it is logged, counted, parked as a dead
letter and acknowledged, and ``retry`` imports it once its key is held. An event is not refused for its age:
JetStream keeps events, and a new service, or one back from an outage, reads them long after they were
published. A replayed event does no harm either: it is recognised by its message id.

An event sealed with its subject's key is opened with that key, from this service's key table or asked of the
exporting service (``citadel.messaging.keyshare``); one whose subject was forgotten is acknowledged and not
imported. The announcements that the exporting modules forgot subjects come through this inbox too, in order with
their events, and are carried out here (``citadel.messaging.forgetting``).

Each event is appended to the service's own log in one transaction with its message id (a redelivered message
is recognised and skipped), and acknowledged after that commit; local projections and process managers then see
it like any local event. A message that keeps failing is retried with backoff and, after ``max_deliver``
deliveries, parked as a dead letter and acknowledged.

**Stream ids** come from the event itself, never from a header: ``inbox.<module>``, the module that exports the
event's type (its subject says which). So an imported event cannot land in a stream of a local aggregate, and
the events of one exporting module enter this log in the order that module published them (the order of its
log): streams are imported side by side, each stream's events one after the other. A stream per data subject or
per type would import faster in parallel, but could reorder two events of one aggregate (an order's creation
and its cancellation), which the consumers here would then see out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from citadel.errors import ConfigurationError, IdempotencyConflict, UnverifiedMessage
from citadel.messaging import wire
from citadel.metrics import metrics
from citadel.security.encryption import is_sealed
from citadel.store.base import Commit, IdempotencyRecord, Metadata, StreamAppend
from citadel.tracing import enabled, link_from, process_span, traceparent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from citadel.messages import EventRegistry
    from citadel.messaging.forgetting import Forgetting
    from citadel.messaging.keyshare import KeyShare
    from citadel.messaging.ports import Broker
    from citadel.store.base import EventStore

__all__ = ["Inbox"]

log = logging.getLogger("citadel.nats")


class Inbox:
    """Imports the integration events this service needs into its own log, exactly once in effect.

    ``events`` maps the stored name of each event type it imports to the module that exports it. ``keys`` opens
    sealed events; with ``forgetting``, the inbox also carries out the exporting modules' forgotten subjects.
    """

    def __init__(
        self,
        broker: Broker,
        store: EventStore,
        registry: EventRegistry,
        service: str,
        events: Mapping[str, str],
        *,
        max_deliver: int = 5,
        backoff: Sequence[float] = (0.1, 0.5, 1.0, 2.0),
        keys: KeyShare | None = None,
        forgetting: Forgetting | None = None,
    ) -> None:
        self.broker = broker
        self.store = store
        self.registry = registry
        self.durable = f"citadel-inbox-{service}"
        self._exporters = dict(events)
        self.keys = keys
        self.forgetting = forgetting
        self._announced = f"{broker.prefix}.forgotten."
        self.subjects = [broker.event_subject(name) for name in events]
        if forgetting is not None:
            self.subjects += [forgetting.subject(module) for module in sorted(set(self._exporters.values()))]
        self._wanted = frozenset(self.subjects)
        self.max_deliver = max_deliver
        self.backoff = list(backoff)
        self.imported = 0
        self._imported = metrics().inbox_imported
        self.skipped = 0
        """Sealed events not imported: their subject was forgotten."""
        self.running = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create (or find) the durable consumer and start importing."""
        # NATS 2.10 filters on several subjects; before it, one consumer takes every message of the stream (in
        # stream order, as it must) and the inbox acknowledges those it does not need without importing them.
        from nats.js import api

        several = self.broker.server_version >= (2, 10)
        config = api.ConsumerConfig(
            durable_name=self.durable,
            filter_subjects=self.subjects if several else None,
            filter_subject=None,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_deliver=self.max_deliver + 1,  # the last delivery parks the message
            backoff=self.backoff[: self.max_deliver] if self.backoff else None,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        try:
            await self.broker.js.add_consumer(self.broker.stream, config)
        except Exception:  # it exists: keep it (its position is the point), and its settings
            log.debug("inbox consumer %s exists", self.durable)
            await self._check_filters()
        subscription = await self.broker.js.pull_subscribe_bind(self.durable, stream=self.broker.stream)
        self.running = True
        self._task = asyncio.create_task(self._run(subscription), name=f"citadel-inbox-{self.durable}")

    async def _check_filters(self) -> None:
        """Warn when the durable consumer, kept from an earlier start, does not take every subject this inbox needs
        (one made by an earlier version does not take the announcements of forgotten subjects)."""
        config = (await self.broker.js.consumer_info(self.broker.stream, self.durable)).config
        filters = [*(config.filter_subjects or ()), *([config.filter_subject] if config.filter_subject else [])]
        missed = [s for s in self.subjects if filters and not any(_matches(f, s) for f in filters)]
        if missed:
            log.warning(
                "inbox consumer %s takes only %s, not %s: delete it once (the inbox makes it again, replays the stream "
                "and recognises what it imported)",
                self.durable,
                ", ".join(filters),
                ", ".join(missed),
            )

    async def stop(self) -> None:
        """Stop importing (what is unacknowledged is delivered again later)."""
        self.running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def pending(self) -> int:
        """Messages for this inbox that the broker holds and it has not imported yet (delivered or not)."""
        info = await self.broker.js.consumer_info(self.broker.stream, self.durable)
        return int(info.num_pending) + int(info.num_ack_pending)

    async def wait_through(self, sequence: int, timeout: float) -> bool:
        """Wait until every message this inbox takes, up to the stream's ``sequence``, is imported and
        acknowledged (it is acknowledged after its commit); False if ``timeout`` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            info = await self.broker.js.consumer_info(self.broker.stream, self.durable)
            if info.ack_floor.stream_seq >= sequence or (
                not info.num_ack_pending and (not info.num_pending or info.delivered.stream_seq >= sequence)
            ):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)

    def exporter_of(self, subject: str) -> str:
        """The module whose event (or announcement) arrived on ``subject``; "" for one this inbox does not take."""
        if subject.startswith(self._announced):
            return subject.removeprefix(self._announced)
        return self._exporters.get(subject.removeprefix(f"{self.broker.prefix}.events."), "")

    def stream_of(self, subject: str) -> str:
        """The local stream id of an event received on ``subject``: ``inbox.<the module that exports it>``."""
        return f"inbox.{self.exporter_of(subject)}"

    async def _run(self, subscription: Any) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        while self.running:
            try:
                messages = await subscription.fetch(batch=200, timeout=1.0)
            except (NatsTimeout, TimeoutError):  # nothing new within the second (raised as either)
                # A cancellation that lands as the fetch times out surfaces as the timeout (the fetch's
                # wait_for swallows it): stop here rather than fetch again with the task still "cancelling".
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from None
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.running:
                    log.warning("inbox %s cannot fetch, retrying: %r", self.durable, exc)
                await asyncio.sleep(0.5)
                continue
            # Streams are imported side by side (their commits are grouped), each stream's events one after the
            # other, so that they enter this log in their own order; each is acknowledged after its commit.
            by_stream: dict[str, list[Any]] = {}
            for message in messages:
                by_stream.setdefault(self.stream_of(message.subject), []).append(message)
            await asyncio.gather(*(self._handle_in_order(stream) for stream in by_stream.values()))

    async def _handle_in_order(self, messages: list[Any]) -> None:
        for message in messages:
            await self._handle(message)

    async def _handle(self, message: Any) -> None:
        try:
            await self._import(message)
        except UnverifiedMessage as exc:  # redelivery cannot make it verify: park it for an operator at once
            await self.park(message, f"{type(exc).__name__}: {exc}", message.metadata.num_delivered)
            await message.ack()
            return
        except Exception as exc:
            delivered = message.metadata.num_delivered
            if delivered >= self.max_deliver:
                await self.park(message, f"{type(exc).__name__}: {exc}", delivered)
                await message.ack()
            else:
                await message.nak(delay=self.backoff[min(delivered, len(self.backoff)) - 1] if self.backoff else None)
            return
        await message.ack()

    async def _import(self, message: Any) -> None:
        if message.subject not in self._wanted:
            return  # another service's business (a server without multi-subject filters sends everything)
        if self.forgetting is not None and message.subject.startswith(self._announced):
            await self.forgetting.receive(message, self.exporter_of(message.subject), self.stream_of(message.subject))
            return
        headers = self.broker.verified(wire.EVENT, message.subject, message.data, message.headers or {})
        type_name = message.subject.removeprefix(f"{self.broker.prefix}.events.")
        data = message.data
        if is_sealed(data):
            if self.keys is None:
                raise ConfigurationError(f"a sealed {type_name} arrived, and this service shares no data keys")
            data = await self.keys.open(self.exporter_of(message.subject), type_name, headers, data)
            if data is None:
                self.skipped += 1  # its subject was forgotten: as if never published
                return
        event = self.registry.decode(type_name, int(headers.get(wire.SCHEMA_VERSION) or 1), data)
        if enabled():  # a CONSUMER span linked to the exporting command's; the imported event keeps this one
            with process_span(message.subject, consumer=self.durable, links=[link_from(headers.get(wire.TRACEPARENT))]):
                await self._commit(message.subject, event, headers, traceparent())
        else:
            await self._commit(message.subject, event, headers, None)

    async def _commit(self, subject: str, event: Any, headers: wire.Verified, trace: str | None) -> None:
        """Append an imported event to its ``inbox.<module>`` stream with its message id (once in effect)."""
        message_id = headers.get(wire.EVENT_ID, "")
        commit = Commit(
            [StreamAppend(self.stream_of(subject), [event])],
            Metadata(
                correlation_id=headers.get(wire.CORRELATION) or None,
                causation_id=message_id,
                actor=headers.get(wire.ACTOR) or None,
                traceparent=trace,
            ),
            idempotency=IdempotencyRecord(f"inbox:{message_id}", "", b"null"),
        )
        try:
            await self.store.commit(commit)
            self.imported += 1
            self._imported.inc()
        except IdempotencyConflict:
            pass  # delivered before, and imported then: one effect

    async def park(self, message: Any, error: str, attempts: int) -> None:
        """Record a message that kept failing, or did not verify; its position is its sequence in the stream,
        where ``retry`` finds it again."""
        await self.store.add_dead_letter(self.consumer_name, _Parked(message), error, attempts)  # type: ignore[arg-type]

    @property
    def consumer_name(self) -> str:
        """The consumer name of this inbox's dead letters."""
        return f"inbox:{self.durable}"

    async def retry(self, sequence: int) -> None:
        """Import the stream's message ``sequence`` again (a parked one, once its cause is fixed).

        Raises:
            UnverifiedMessage: its signature still does not verify (it stays parked).
            Whatever importing it raises (it stays parked).
        """
        stored = await self.broker.js.get_msg(self.broker.stream, sequence)
        await self._import(_Stored(stored))


def _matches(pattern: str, subject: str) -> bool:
    """Whether the NATS subject filter ``pattern`` (``*`` one token, ``>`` the rest) takes ``subject``."""
    wanted, parts = pattern.split("."), subject.split(".")
    for i, part in enumerate(wanted):
        if part == ">":
            return len(parts) > i
        if i >= len(parts) or part not in ("*", parts[i]):
            return False
    return len(parts) == len(wanted)


class _Parked:
    """The fields of a broker message that a dead letter keeps (the shape of a recorded event)."""

    def __init__(self, message: Any) -> None:
        headers = message.headers or {}
        self.position = int(message.metadata.sequence.stream)
        self.event_id = headers.get(wire.EVENT_ID, "")[:128]


class _Stored:
    """A message read back from the stream, shaped like a delivered one."""

    def __init__(self, raw: Any) -> None:
        self.subject = raw.subject
        self.headers = raw.headers or {}
        self.data = raw.data
