"""NATS (with JetStream) between services: remote commands and queries, and integration events.

* **Commands and queries** of a module that runs elsewhere travel by request/reply on
  ``citadel.rpc.<message name>``; the services that run the module answer in a queue group (replicas share
  the load). No responder answers at once (the caller gets 503); a slow one times out. Only what is safe to
  repeat is retried: queries, and commands that carry an idempotency key.
* **Integration events** leave through the outbox relay: the event store is the outbox, a consumer follows
  it from its checkpoint and publishes each public event of the service's modules to JetStream, on
  ``citadel.events.<module>.<Event>``, with the event id as ``Nats-Msg-Id`` (the broker drops a duplicate
  publish), and moves its checkpoint only once the broker acknowledged. At least once, in log order
  (``citadel.messaging.relay``). An event whose type declares a data subject travels sealed with the subject's
  key, which importing services ask its service for (``citadel.messaging.keyshare``); a forgotten subject is
  announced on ``citadel.forgotten.<module>``, in the same stream (``citadel.messaging.forgetting``).
* **The inbox** of a service is a durable JetStream consumer of the events its own consumers need
  (``citadel.messaging.inbox``).
* **Every message is signed** with the services' shared keys and verified before it is read
  (``citadel.messaging.wire``): a request that does not verify is answered with ``UnverifiedMessage`` (401 for
  the caller's client), a reply that does not verify fails the request, an event that does not verify is parked.
  Requests, replies, "published?" and key requests older than ``max_age`` seconds are refused as stale; what
  JetStream keeps (events, forgotten subjects) is not (see the inbox). Each refusal is logged with its subject
  and counted in ``refusals``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from citadel.context import DispatchContext
from citadel.errors import ConfigurationError, PositionNotWritten, ServiceUnavailable, UnverifiedMessage
from citadel.extras import require
from citadel.ids import new_id
from citadel.messaging import wire
from citadel.messaging.connection import BrokerConnection
from citadel.messaging.inbox import Inbox
from citadel.messaging.ports import Give, Outgoing
from citadel.messaging.relay import OutboxRelay
from citadel.messaging.signing import ServiceKeys
from citadel.messaging.stream import ensure_stream
from citadel.metrics import metrics

if TYPE_CHECKING:
    from citadel.messages import Message
    from citadel.store.base import RecordedEvent

__all__ = ["Inbox", "NatsBroker", "OutboxRelay"]

log = logging.getLogger("citadel.nats")
_MAX_SEEN = 100_000
"""Request tags a service remembers against replays, at most (a few MB)."""
Serve = Callable[["Message", DispatchContext], Awaitable[tuple[bytes, int, bool]]]
PublishedThrough = Callable[[int, float], Awaitable[bool]]


class NatsBroker:
    """One connection to NATS, with its JetStream context.

    The URL's path names the application on a shared NATS server (``nats://host:4222/shop``): its subjects
    start with that name and its events stream is ``<NAME>_EVENTS``; without a path the name is ``citadel``.
    Subjects and stream names below are shown for the default. ``keys`` sign and verify every message between
    services (without them ``connect`` refuses); a request or reply older than ``max_age`` seconds is refused.
    The inbox, the relay, key sharing and forgetting see it as ``citadel.messaging.ports.Broker``.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        keys: ServiceKeys | None = None,
        max_age: float = 60.0,
        connection: BrokerConnection | None = None,
    ) -> None:
        require("nats", "nats", "a NATS broker")
        # The URL's user and password or token move into the connection: the URL kept (and shown) has none.
        url, self.connection = (connection or BrokerConnection()).for_url(url)
        server, _, path = url.partition("://")[2].partition("/")
        namespace = path.strip("/") or "citadel"
        if not namespace.replace("-", "").replace("_", "").isalnum():
            raise ConfigurationError(f"the broker URL's path {path!r} must be a name: letters, digits, - and _")
        self.url = f"{url.partition('://')[0]}://{server}"
        self.prefix = namespace
        self.stream = namespace.upper().replace("-", "_") + "_EVENTS"
        self.timeout = timeout
        self.retries = retries
        self.keys, self.max_age, self.refusals = keys, max_age, Counter[tuple[str, str]]()  # (kind, reason)
        self._seen: dict[str, float] = {}  # tags of verified requests, until they go stale
        self._nc: Any = None
        self.js: Any = None
        self._subscriptions: list[Any] = []
        self._handling: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        """Connect with ``connection``'s credentials and TLS (reconnecting forever afterwards), and make sure the
        events stream exists.

        Raises:
            ConfigurationError: no service keys, or NATS refused the credentials or the TLS settings (see
                ``citadel.messaging.connection``).
            ServiceUnavailable: NATS cannot be reached within the timeout, or did not create the events stream
                (JetStream is off, or this service's NATS user may not).
        """
        from citadel.messaging.nats_client import open_connection

        self._require_keys()
        self._nc = await open_connection(self.url, self.connection, name="citadel", timeout=self.timeout)
        self.js = self._nc.jetstream()
        subjects = [f"{self.prefix}.events.>", f"{self.prefix}.forgotten.>"]
        try:
            await ensure_stream(self.js, self.stream, subjects, replicas=self.connection.stream_replicas)
        except Exception as exc:
            await self.close()
            raise ServiceUnavailable(
                f"NATS at {self.url} did not create or update the events stream {self.stream} ({exc!r}): JetStream "
                f"must be on for this account, and this service's user may publish to $JS.API.STREAM.INFO, "
                f"$JS.API.STREAM.CREATE and $JS.API.STREAM.UPDATE, each followed by .{self.stream}"
            ) from exc

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

    # -- signing ------------------------------------------------------------------------------------------

    def _require_keys(self) -> ServiceKeys:
        if self.keys is None:
            raise ConfigurationError(
                "the broker has no service keys to sign and verify the messages between services: set service_key "
                "(CITADEL_SERVICE_KEY) or service_key_file (CITADEL_SERVICE_KEY_FILE), or run in development mode "
                "(CITADEL_DEV=1), which creates a key file"
            )
        return self.keys

    def signed(self, kind: str, subject: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` with the timestamp and the signature of the message under the current service key."""
        return wire.sign(self._require_keys(), kind, subject, body, headers)

    def verified(self, kind: str, subject: str, body: bytes, headers: dict[str, str]) -> wire.Verified:
        """Verify a message received on ``subject``, and its age unless JetStream keeps its kind; return its
        headers. An event is not refused for its age: JetStream keeps events, a new service replays the stream
        long after they were published, and the inbox recognises a replayed event by its message id.

        Raises:
            UnverifiedMessage: it does not verify; the refusal is logged and counted in ``refusals`` first.
        """
        max_age = None if kind in wire.KEPT else self.max_age
        try:
            found = wire.verify(self._require_keys(), kind, subject, body, headers, max_age=max_age)
            # A request (a key request too) by its tag: a retry is signed anew (a new timestamp), a replay is not.
            if kind in (wire.REQUEST, wire.KEY):
                self._first_time(headers.get(wire.SIGNATURE, ""))
            return found
        except UnverifiedMessage as exc:
            self.refusals[(kind, exc.reason)] += 1
            self._refused(exc.reason)
            actor, key_id = headers.get(wire.ACTOR, "")[:128], headers.get(wire.SIGNATURE, "").partition(":")[0][:64]
            log.warning("refused a %s on %s: %s (claimed actor %r, key id %r)", kind, subject, exc, actor, key_id)
            raise

    @staticmethod
    def _refused(reason: str) -> None:
        """Count a refusal in the metrics (its reason is one of the few ``wire.verify`` gives)."""
        metrics().signature_refusals.labels(reason).inc()

    def _first_time(self, tag: str) -> None:
        """Refuse a request this process has verified before, within its age limit: a captured request replayed
        (a replica of the service in the same queue group does not share this memory; idempotency keys make
        commands safe to repeat across replicas).

        Raises:
            UnverifiedMessage: the request was seen already.
        """
        now = time.monotonic()
        seen = self._seen
        if seen.get(tag, 0.0) > now:
            raise UnverifiedMessage("the request was received before: a replay", reason="replayed")
        if len(seen) >= _MAX_SEEN:  # the oldest first: keep those still within the age limit, then bound the rest
            for old in [k for k, until in seen.items() if until <= now][:_MAX_SEEN] or list(seen)[: _MAX_SEEN // 2]:
                del seen[old]
        seen[tag] = now + self.max_age + wire.FUTURE

    async def _reply(self, message: Any, in_reply_to: str, body: bytes, headers: dict[str, str]) -> None:
        """Answer ``message`` (if it asks for an answer), signed, naming the request it answers."""
        if message.reply:
            headers = self.signed(wire.REPLY, message.reply, body, {**headers, wire.IN_REPLY_TO: in_reply_to})
            await self._nc.publish(message.reply, body, headers=headers)

    def _answer_of(self, reply: Any, in_reply_to: str) -> wire.Verified:
        """The verified headers of the answer to the request ``in_reply_to`` (a reply to another request, or one
        that changed on its way, does not verify)."""
        headers = {**(reply.headers or {}), wire.IN_REPLY_TO: in_reply_to}
        return self.verified(wire.REPLY, reply.subject, reply.data, headers)

    # -- remote commands and queries ---------------------------------------------------------------------

    async def request(
        self, name: str, body: bytes, context: DispatchContext, *, retry: bool
    ) -> tuple[bytes, int, bool]:
        """Send a command or query to the service that owns it; return its result, position and replay flag.

        Raises:
            ServiceUnavailable: no service answers (at once when none listens, else after the timeout).
            UnverifiedMessage: the answer does not verify, or the owning service refused the request's signature.
            The error the owning service raised, rebuilt (DomainError, NotFound, ...).
        """
        from nats import errors

        subject = f"{self.prefix}.rpc.{name}"
        headers = wire.headers_of(name, context)
        wait = context.wait if context.min_position else 0.0
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            signed = self.signed(wire.REQUEST, subject, body, headers)  # at each attempt: a fresh timestamp
            try:
                reply = await self._nc.request(subject, body, timeout=self.timeout + wait, headers=signed)
            except errors.NoRespondersError:
                raise ServiceUnavailable(f"no service runs {name.split('.')[0]} right now; retry shortly") from None
            except errors.TimeoutError:
                if attempt + 1 < attempts:
                    continue
                raise ServiceUnavailable(f"the service that runs {name.split('.')[0]} did not answer in time") from None
            answer = self._answer_of(reply, context.message_id)
            if wire.ERROR not in answer:
                return reply.data, int(answer.get(wire.POSITION) or 0), answer.get(wire.REPLAYED) == "1"
            error, text = answer[wire.ERROR], reply.data.decode(errors="replace")
            if wire.is_unexpected(error) or error == UnverifiedMessage.__name__:
                log.error(
                    "%s failed in its service (%s, correlation id %s): %s", name, error, context.correlation_id, text
                )
            raise wire.error_from(error, text)
        raise AssertionError("unreachable")

    async def serve(self, module: str, decode: Callable[[str, bytes], Message], handle: Serve) -> None:
        """Answer the requests for ``module``'s commands and queries (in a queue group with its replicas): each
        one is verified before its body is decoded or its context built; one that does not verify is answered
        with ``UnverifiedMessage``."""

        async def answer(message: Any) -> None:
            claimed = message.headers or {}
            correlation = claimed.get(wire.CORRELATION, "")[:128]
            try:
                headers = self.verified(wire.REQUEST, message.subject, message.data, claimed)
                request = decode(headers.get(wire.TYPE, ""), message.data)
                with wire.served_span(message.subject, module, headers):
                    body, position, replayed = await handle(request, wire.context_from(headers))
                reply = {wire.POSITION: str(position), wire.REPLAYED: "1" if replayed else "0"}
            except Exception as exc:
                if wire.is_unexpected(wire.error_headers(exc)[wire.ERROR]):
                    log.error(
                        "unexpected error answering %s (correlation id %s)", message.subject, correlation, exc_info=exc
                    )
                body, reply = wire.error_answer(exc, correlation)
            await self._reply(message, claimed.get(wire.MESSAGE_ID, ""), body, reply)

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
        last sequence once it has (so a caller knows which messages it must have imported), else empty; a
        question that does not verify is answered with ``UnverifiedMessage``."""

        async def answer(message: Any) -> None:
            claimed = message.headers or {}
            reply: dict[str, str] = {}
            try:
                self.verified(wire.PUBLISHED, message.subject, message.data, claimed)
                position, wait = message.data.decode().split(" ")
                done = await published_through(int(position), float(wait))
                body = str((await self.js.stream_info(self.stream)).state.last_seq).encode() if done else b""
            except (UnverifiedMessage, PositionNotWritten) as exc:
                body, reply = str(exc).encode(), wire.error_headers(exc)
            except Exception as exc:
                log.warning("cannot answer whether %s published: %s", module, exc)
                body = b""
            await self._reply(message, claimed.get(wire.MESSAGE_ID, ""), body, reply)

        await self._answer(f"{self.prefix}.published.{module}", module, answer)

    async def published_through(self, module: str, position: int, wait: float) -> int | None:
        """The events stream's sequence by which ``module``'s service has published its log up to ``position``;
        None if it has not within ``wait`` seconds, or does not answer.

        Raises:
            UnverifiedMessage: the answer does not verify, or that service refused this question's signature.
        """
        asked = await self.ask(wire.PUBLISHED, f"{self.prefix}.published.{module}", f"{position} {wait}".encode(), wait)
        if asked is None:
            return None
        body, answer, _ = asked
        if wire.ERROR in answer:
            raise wire.error_from(answer[wire.ERROR], body.decode(errors="replace"))
        return int(body) if body else None

    async def ask(
        self, kind: str, subject: str, body: bytes, wait: float = 0.0
    ) -> tuple[bytes, wire.Verified, dict[str, str]] | None:
        """Send a signed question of ``kind`` on ``subject``; return the answer's body, its verified headers and the
        question's signed headers; None when no service answers within the timeout (plus ``wait`` seconds).

        Raises:
            UnverifiedMessage: the answer does not verify.
        """
        from nats import errors

        message_id = new_id()
        headers = self.signed(kind, subject, body, {wire.MESSAGE_ID: message_id})
        try:
            reply = await self._nc.request(subject, body, timeout=wait + self.timeout, headers=headers)
        except (errors.NoRespondersError, errors.TimeoutError):
            return None
        return reply.data, self._answer_of(reply, message_id), headers

    async def answer(self, kind: str, subject: str, module: str, give: Give) -> None:
        """Answer the questions of ``kind`` on ``subject`` (in ``module``'s queue group) with what ``give`` returns
        for their body and verified headers; a question that does not verify is answered with
        ``UnverifiedMessage``, one that ``give`` fails on with the error (its text only if meant for the caller)."""

        async def on_question(message: Any) -> None:
            claimed = message.headers or {}
            try:
                body, reply = await give(message.data, self.verified(kind, message.subject, message.data, claimed))
            except Exception as exc:
                if not isinstance(exc, UnverifiedMessage):
                    log.warning("cannot answer a %s question on %s: %r", kind, message.subject, exc)
                body, reply = wire.error_answer(exc, claimed.get(wire.CORRELATION, "")[:128])
            await self._reply(message, claimed.get(wire.MESSAGE_ID, ""), body, reply)

        await self._answer(subject, module, on_question)

    def event_message(self, r: RecordedEvent, sealed: bytes | None = None) -> Outgoing:
        """The message that carries a recorded event: its payload, or ``sealed`` (then its stream and version,
        which the seal is bound to, travel in the signed headers)."""
        headers = {
            wire.EVENT_ID: r.event_id,
            wire.TYPE: r.type,
            wire.SCHEMA_VERSION: str(r.schema_version),
            wire.CORRELATION: r.correlation_id or "",
            wire.ACTOR: r.actor or "",
        }
        if sealed is not None:
            headers |= {wire.STREAM: r.stream_id, wire.VERSION: str(r.version)}
        return wire.EVENT, self.event_subject(r.type), r.data if sealed is None else sealed, headers

    async def publish_events(self, records: Sequence[RecordedEvent]) -> None:
        """Publish events to JetStream as they are, each signed, in order, and wait until the broker stored them."""
        await self.publish([self.event_message(r) for r in records])

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish messages to JetStream, each signed, in order, and wait until the broker has stored every one."""
        acks = [
            self.js.publish(subject, body, headers=self.signed(kind, subject, body, headers))
            for kind, subject, body, headers in messages
        ]
        await asyncio.gather(*acks)
