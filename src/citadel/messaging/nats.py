"""NATS (with JetStream) between services: remote commands and queries, and integration events.

* **Commands and queries** of a module that runs elsewhere travel by request/reply on
  ``citadel.rpc.<message name>``; the services that run the module answer in a queue group (replicas share
  the load). No responder answers at once (the caller gets 503); a slow one times out. Only what is safe to
  repeat is retried: queries, and commands that carry an idempotency key.
* **Integration events** leave through the outbox relay: the event store is the outbox, a consumer follows
  it from its checkpoint and publishes each public event of the service's modules to JetStream, on
  ``citadel.events.<module>.<Event>``, with the event id as ``Nats-Msg-Id`` (the broker drops a duplicate
  publish), and moves its checkpoint only once the broker acknowledged. At least once, in log order.
* **The inbox** of a service is a durable JetStream consumer of the events its own consumers need. Each event
  is appended to the service's own log in one transaction with its message id (a redelivered message is
  recognised and skipped), and acknowledged after that commit; local projections and process managers then
  see it like any local event. A message that keeps failing is retried with backoff and, after
  ``max_deliver`` deliveries, parked as a dead letter and acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import nats
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api

from citadel.context import DispatchContext
from citadel.errors import ConfigurationError, IdempotencyConflict, ServiceUnavailable
from citadel.messaging import wire
from citadel.messaging.consumer import Consumer
from citadel.store.base import Commit, IdempotencyRecord, Metadata, StreamAppend

if TYPE_CHECKING:
    from citadel.messages import EventRegistry, Message
    from citadel.store.base import EventStore, RecordedEvent

__all__ = ["Inbox", "NatsBroker", "OutboxRelay"]

log = logging.getLogger("citadel.nats")
Serve = Callable[["Message", DispatchContext], Awaitable[tuple[bytes, int, bool]]]
PublishedThrough = Callable[[int, float], Awaitable[bool]]


class NatsBroker:
    """One connection to NATS, with its JetStream context.

    The URL's path names the application on a shared NATS server (``nats://host:4222/shop``): its subjects
    start with that name and its events stream is ``<NAME>_EVENTS``; without a path the name is ``citadel``.
    Subjects and stream names below are shown for the default.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 2) -> None:
        server, _, path = url.partition("://")[2].partition("/")
        namespace = path.strip("/") or "citadel"
        if not namespace.replace("-", "").replace("_", "").isalnum():
            raise ConfigurationError(f"the broker URL's path {path!r} must be a name: letters, digits, - and _")
        self.url = f"{url.partition('://')[0]}://{server}"
        self.prefix = namespace
        self.stream = namespace.upper().replace("-", "_") + "_EVENTS"
        self.timeout = timeout
        self.retries = retries
        self._nc: Any = None
        self.js: Any = None
        self._subscriptions: list[Any] = []
        self._handling: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        """Connect (reconnecting forever afterwards) and make sure the events stream exists.

        Raises:
            ServiceUnavailable: NATS cannot be reached.
        """
        try:
            self._nc = await nats.connect(
                self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=2, name="citadel"
            )
        except Exception as exc:
            raise ServiceUnavailable(f"cannot reach NATS at {self.url}: {exc}") from exc
        self.js = self._nc.jetstream()
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.events.>"],
            storage=api.StorageType.FILE,
            duplicate_window=120.0,
        )
        try:
            await self.js.add_stream(config)
        except Exception:
            await self.js.update_stream(config)

    @property
    def server_version(self) -> tuple[int, int]:
        """The connected server's version, (major, minor)."""
        version = self._nc.connected_server_version
        return int(version.major), int(version.minor)

    async def close(self) -> None:
        """Stop taking requests, let those in flight answer (bounded by the timeout), and close."""
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self._subscriptions.clear()
        if self._handling:
            await asyncio.wait(list(self._handling), timeout=self.timeout)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    # -- remote commands and queries ---------------------------------------------------------------------

    async def request(
        self, name: str, body: bytes, context: DispatchContext, *, retry: bool
    ) -> tuple[bytes, int, bool]:
        """Send a command or query to the service that owns it; return its result, position and replay flag.

        Raises:
            ServiceUnavailable: no service answers (at once when none listens, else after the timeout).
            The error the owning service raised, rebuilt (DomainError, NotFound, ...).
        """
        headers = wire.headers_of(name, context)
        wait = context.wait if context.min_position else 0.0
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            try:
                reply = await self._nc.request(
                    f"{self.prefix}.rpc.{name}", body, timeout=self.timeout + wait, headers=headers
                )
            except NoRespondersError:
                raise ServiceUnavailable(f"no service runs {name.split('.')[0]} right now; retry shortly") from None
            except NatsTimeout:
                if attempt + 1 < attempts:
                    continue
                raise ServiceUnavailable(f"the service that runs {name.split('.')[0]} did not answer in time") from None
            answer = reply.headers or {}
            if wire.ERROR in answer:
                raise wire.error_from(answer[wire.ERROR], reply.data.decode())
            return reply.data, int(answer.get(wire.POSITION, 0)), answer.get(wire.REPLAYED) == "1"
        raise AssertionError("unreachable")

    async def serve(self, module: str, decode: Callable[[str, bytes], Message], handle: Serve) -> None:
        """Answer the requests for ``module``'s commands and queries (in a queue group with its replicas)."""

        async def answer(message: Any) -> None:
            headers = message.headers or {}
            try:
                request = decode(headers.get(wire.TYPE, ""), message.data)
                body, position, replayed = await handle(request, wire.context_from(headers))
                reply = {wire.POSITION: str(position), wire.REPLAYED: "1" if replayed else "0"}
            except Exception as exc:
                body, reply = str(exc).encode(), wire.error_headers(exc)
            if message.reply:
                await self._nc.publish(message.reply, body, headers=reply)

        await self._answer(f"{self.prefix}.rpc.{module}.>", module, answer)

    async def _answer(self, subject: str, module: str, answer: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
        """Subscribe ``answer`` to ``subject`` in ``module``'s queue group, each request in a task of its own:
        the subscription delivers one message at a time, and a command waits for its commit; requests must
        share group commits, not queue behind each other."""

        async def on_request(message: Any) -> None:
            task = asyncio.create_task(answer(message))
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)

        self._subscriptions.append(await self._nc.subscribe(subject, queue=f"{self.prefix}.{module}", cb=on_request))

    def event_subject(self, type_name: str) -> str:
        """``orders.OrderCreated`` → ``citadel.events.orders.OrderCreated``."""
        return f"{self.prefix}.events.{type_name}"

    async def serve_published(self, module: str, published_through: PublishedThrough) -> None:
        """Answer "has your relay published up to position n?" for ``module``'s service: with the events stream's
        last sequence once it has (so a caller knows which messages it must have imported), else empty."""

        async def answer(message: Any) -> None:
            try:
                position, wait = message.data.decode().split(" ")
                done = await published_through(int(position), float(wait))
                body = str((await self.js.stream_info(self.stream)).state.last_seq).encode() if done else b""
            except Exception as exc:
                log.warning("cannot answer whether %s published: %s", module, exc)
                body = b""
            if message.reply:
                await self._nc.publish(message.reply, body)

        await self._answer(f"{self.prefix}.published.{module}", module, answer)

    async def published_through(self, module: str, position: int, wait: float) -> int | None:
        """The events stream's sequence by which ``module``'s service has published its log up to ``position``;
        None if it has not within ``wait`` seconds, or does not answer."""
        try:
            reply = await self._nc.request(
                f"{self.prefix}.published.{module}", f"{position} {wait}".encode(), timeout=wait + self.timeout
            )
        except (NoRespondersError, NatsTimeout):
            return None
        return int(reply.data) if reply.data else None

    async def publish_events(self, records: Sequence[RecordedEvent]) -> None:
        """Publish events to JetStream in order and wait until the broker has stored every one."""
        acks = [
            self.js.publish(
                self.event_subject(r.type),
                r.data,
                headers={
                    "Nats-Msg-Id": r.event_id,
                    "Citadel-Stream": r.stream_id,
                    "Citadel-Version": str(r.version),
                    "Citadel-Schema-Version": str(r.schema_version),
                    wire.CORRELATION: r.correlation_id or "",
                    wire.ACTOR: r.actor or "",
                },
            )
            for r in records
        ]
        await asyncio.gather(*acks)


class OutboxRelay(Consumer):
    """Follows the local log and publishes the public events of this service's modules to JetStream."""

    def __init__(
        self, store: EventStore, broker: NatsBroker, exported: frozenset[str], *, owner: str, lease_ttl: float = 5.0
    ) -> None:
        super().__init__("citadel.outbox", store, owner=owner, lease_ttl=lease_ttl)
        self.broker = broker
        self.exported = exported
        self.types = exported
        self.published = 0

    async def process(self, records: Sequence[RecordedEvent], upto: int) -> None:
        public = [r for r in records if r.type in self.exported and not r.forgotten]
        if public:
            await self.broker.publish_events(public)
            self.published += len(public)
        await self.store.save_checkpoint(self.name, upto, self.lease)
        self.saved(upto)


class Inbox:
    """Imports the integration events this service needs into its own log, exactly once in effect."""

    def __init__(
        self,
        broker: NatsBroker,
        store: EventStore,
        registry: EventRegistry,
        service: str,
        subjects: Sequence[str],
        *,
        max_deliver: int = 5,
        backoff: Sequence[float] = (0.1, 0.5, 1.0, 2.0),
    ) -> None:
        self.broker = broker
        self.store = store
        self.registry = registry
        self.durable = f"citadel-inbox-{service}"
        self.subjects = list(subjects)
        self._wanted = frozenset(subjects)
        self.max_deliver = max_deliver
        self.backoff = list(backoff)
        self.imported = 0
        self.running = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create (or find) the durable consumer and start importing."""
        # NATS 2.10 filters on several subjects; before it, one consumer takes every event of the stream (in
        # stream order, as it must) and the inbox acknowledges those it does not need without importing them.
        several = self.broker.server_version >= (2, 10)
        config = api.ConsumerConfig(
            durable_name=self.durable,
            filter_subjects=self.subjects if several else None,
            filter_subject=None if several else f"{self.broker.prefix}.events.>",
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
        subscription = await self.broker.js.pull_subscribe_bind(self.durable, stream=self.broker.stream)
        self.running = True
        self._task = asyncio.create_task(self._run(subscription), name=f"citadel-inbox-{self.durable}")

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

    async def _run(self, subscription: Any) -> None:
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
                by_stream.setdefault((message.headers or {}).get("Citadel-Stream", ""), []).append(message)
            await asyncio.gather(*(self._handle_in_order(stream) for stream in by_stream.values()))

    async def _handle_in_order(self, messages: list[Any]) -> None:
        for message in messages:
            await self._handle(message)

    async def _handle(self, message: Any) -> None:
        try:
            await self._import(message)
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
        headers = message.headers or {}
        type_name = message.subject.removeprefix(f"{self.broker.prefix}.events.")
        event = self.registry.decode(type_name, int(headers.get("Citadel-Schema-Version", 1)), message.data)
        message_id = headers.get("Nats-Msg-Id", "")
        commit = Commit(
            [StreamAppend(headers.get("Citadel-Stream", type_name), [event])],
            Metadata(
                correlation_id=headers.get(wire.CORRELATION) or None,
                causation_id=message_id,
                actor=headers.get(wire.ACTOR) or None,
            ),
            idempotency=IdempotencyRecord(f"inbox:{message_id}", "", b"null"),
        )
        try:
            await self.store.commit(commit)
            self.imported += 1
        except IdempotencyConflict:
            pass  # delivered before, and imported then: one effect

    async def park(self, message: Any, error: str, attempts: int) -> None:
        """Record a message that kept failing; its position is its sequence in the stream, where ``retry``
        finds it again."""
        await self.store.add_dead_letter(self.consumer_name, _Parked(message), error, attempts)  # type: ignore[arg-type]

    @property
    def consumer_name(self) -> str:
        """The consumer name of this inbox's dead letters."""
        return f"inbox:{self.durable}"

    async def retry(self, sequence: int) -> None:
        """Import the stream's message ``sequence`` again (a parked one, once its cause is fixed).

        Raises:
            Whatever importing it raises (it stays parked).
        """
        stored = await self.broker.js.get_msg(self.broker.stream, sequence)
        await self._import(_Stored(stored))


class _Parked:
    """The fields of a broker message that a dead letter keeps (the shape of a recorded event)."""

    def __init__(self, message: Any) -> None:
        headers = message.headers or {}
        self.position = int(message.metadata.sequence.stream)
        self.event_id = headers.get("Nats-Msg-Id", "")


class _Stored:
    """A message read back from the stream, shaped like a delivered one."""

    def __init__(self, raw: Any) -> None:
        self.subject = raw.subject
        self.headers = raw.headers or {}
        self.data = raw.data
