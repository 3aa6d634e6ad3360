"""Where modules run: all in this process (the default), or some here and the others in other services,
reached through a broker. The modules' code is the same either way; only the wiring below changes.

A ``Topology`` is this service's link to the others. It answers the application's ``Routes`` question when the
application registers its handlers (a forwarder for each public command and query of a module that runs
elsewhere), serves the local modules' messages to the other services, and runs the outbox relay and the inbox.
It is given what it works with (the composition, the placement, the open store, the consumers, and a way to
serve a message here) and never reads the ``Application`` itself.

A service runs its *local* modules: their handlers, views, projections and process managers, on its own
store. The commands and queries of the other modules are forwarded to the services that run them; the
integration events of local modules go out through the outbox relay, and those that local consumers need come
in through the inbox (``citadel.messaging.nats``). The broker is given as a ready ``NatsBroker``, which holds
the service keys every message between services is signed and verified with; a bare URL makes a broker without
keys, which refuses to connect.

**Positions across services.** A command answers with the position of its last event, which a client passes
back as a query's ``min_position`` to read its own write. With one process there is one log and the position
is a number. With several services each has its own log, so a position is only meaningful with the service
that wrote it, and travels as ``module:number`` (the module whose command wrote it). A service asked to wait
for ``orders:57``, where orders runs elsewhere, waits in three steps, each one bounded by the query's wait:

1. the service of ``orders`` confirms that its outbox relay has published everything up to its position 57,
   and answers with the broker stream's last sequence number at that moment (≥ all those events);
2. this service's inbox has imported (committed, then acknowledged) every message it needs up to that
   sequence, as its durable consumer reports;
3. the read models of the queried module have processed this service's own log up to its head.

Everything the write at ``orders:57`` caused upstream of this service's consumers is then visible, by the
same at-least-once, in-order delivery the relay and inbox give events.

**Data subjects across services.** A public event whose type declares a data subject travels sealed with the
subject's key, and a service that imports it keeps a copy of that key, which it deletes when the exporting
module's service announces that it forgot the subject (``citadel.messaging.keyshare``,
``citadel.messaging.forgetting``). Both services then need encryption at rest: a service without a keyring that
exports or imports such events is refused at start.
"""

from __future__ import annotations

import asyncio
import typing
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

import msgspec

from citadel.consumer_set import ConsumerSet, wait_for_all
from citadel.context import DispatchContext
from citadel.errors import ConfigurationError, NotCaughtUp
from citadel.handling import Receipt, current_receipt
from citadel.messages import Event, Message, Query, SubjectForgotten, decode_json, encode_json, subject_key
from citadel.messaging.forgetting import Announcer, Forgetting
from citadel.messaging.inbox import Inbox
from citadel.messaging.keyshare import KeyShare
from citadel.messaging.nats import NatsBroker, OutboxRelay
from citadel.placement import MAX_POSITION, Placement, parse_position
from citadel.reactions import check_written, wait_for_chains
from citadel.tracing import enabled, send_span

if TYPE_CHECKING:
    from citadel.bus import AsyncHandler, Handler
    from citadel.composition import Composition
    from citadel.module import Module
    from citadel.security.encryption import Keyring
    from citadel.store.base import EventStore

__all__ = ["MAX_POSITION", "Broker", "ServeHere", "Topology", "parse_position"]

Broker = str | NatsBroker
"""A broker to other services: a ``NatsBroker`` with its service keys, or a URL (a broker without keys)."""

ServeHere = Callable[[Message, DispatchContext], Awaitable[tuple[Any, Receipt]]]
"""How a message another service sent is handled here: its result, and the receipt of what it wrote."""


class Topology:
    """The part of an application this process runs, and its broker to the rest (see the module docstring)."""

    def __init__(
        self,
        composition: Composition,
        placement: Placement,
        broker: Broker | None,
        *,
        store: EventStore,
        consumers: ConsumerSet,
        serve: ServeHere,
        node_id: str,
        lease_ttl: float,
        keyring: Keyring | None,
    ) -> None:
        self.composition = composition
        self.placement = placement
        self.broker = broker if isinstance(broker, NatsBroker) else NatsBroker(broker) if broker else None
        self.store = store
        self._consumers = consumers
        self._serve = serve
        self._node_id = node_id
        self._lease_ttl = lease_ttl
        self._keyring = keyring
        self.relay: OutboxRelay | None = None
        self.inbox: Inbox | None = None
        self.keys: KeyShare | None = None

    @property
    def local(self) -> frozenset[str]:
        """The names of the modules this process runs."""
        return self.placement.local

    @property
    def partial(self) -> bool:
        """Whether other services run some of the modules."""
        return self.placement.partial

    def runs(self, module: str) -> bool:
        """Whether this process runs the module named ``module``."""
        return self.placement.runs(module)

    def is_local(self, module: Module) -> bool:
        """Whether this process runs ``module``."""
        return self.placement.runs(module.name)

    def position_token(self, module: str, position: int) -> str:
        """A position as clients see it: the number, or ``module:number`` in a partial topology."""
        return self.placement.position_token(module, position)

    @property
    def service(self) -> str:
        """This service's name: its local modules, joined."""
        return self.placement.service

    def remote(self, module: Module, message_type: type[Message], handler: Handler) -> AsyncHandler | None:
        """The forwarder of ``module``'s public ``message_type`` to the service that runs it; None when it is
        handled here (``citadel.placement.Routes``)."""
        if self.broker is None or self.runs(module.name) or not module.is_public(message_type):
            return None
        return self._forwarder(self.broker, module, message_type, handler)

    def forgotten_events(self, subject: str, module: str) -> list[Event]:
        """The events that record in this service's log that ``module`` forgot ``subject``: ``SubjectForgotten``,
        and one of each subclass of it that a local module lists among its events (for its projections)."""
        types: list[type[SubjectForgotten]] = [SubjectForgotten]
        for m in self.composition.modules.values():
            if self.is_local(m):
                types += [t for t in m.events if issubclass(t, SubjectForgotten) and t is not SubjectForgotten]
        return [t(subject=subject, key_id=subject_key(subject), module=module) for t in types]

    async def catch_up(self, module: str, position: int, source: str, timeout: float) -> None:
        """Wait until the read models of local ``module`` reflect position ``position`` of ``source``'s log
        ("" for this service's own log), as the module docstring describes.

        Raises:
            PositionNotWritten: ``position`` is beyond the highest position written to this service's own log.
            NotCaughtUp: not within ``timeout`` seconds.
        """
        if not source or self.runs(source):  # another service's log: its relay's answer bounds the wait instead
            await check_written(self.store, position)
        if not await self._caught_up(module, position, source, timeout):
            where = f"{source}:{position}" if source else str(position)
            raise NotCaughtUp(f"the read models of {module} have not reached position {where} yet")

    async def _caught_up(self, module: str, position: int, source: str, timeout: float) -> bool:
        if not source or self.runs(source) or self.broker is None:
            return await self._consumers.wait_for_module(module, position, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Asked even with no inbox here: the answer also says that the source's reactions, the commands they sent
        # to this service included, are done.
        sequence = await self.broker.published_through(source, position, timeout)
        if sequence is None:
            return False
        if self.inbox is not None and not await self.inbox.wait_through(sequence, deadline - loop.time()):
            return False
        head = await self.store.last_position()
        return await self._consumers.wait_for_module(module, head, max(0.0, deadline - loop.time()))

    async def start(self) -> None:
        """Connect the broker; serve the local modules, start relay and inbox."""
        if self.broker is None:
            return
        composition = self.composition
        await self.broker.connect()
        decode = self._decoder()
        for module in composition.modules.values():
            if self.is_local(module):
                await self.broker.serve(module.name, decode, self._serve_locally)
                await self.broker.serve_published(module.name, self._published_through)
        registry = composition.registry
        public = [
            (m.name, t) for m in composition.modules.values() if self.is_local(m) for t in m.events if m.is_public(t)
        ]
        exported = frozenset(registry.of(t).name for _, t in public)
        sealed = {m: registry.of(t).name for m, t in public if t.__message_subject__ is not None}
        self.keys = self._key_share(sealed.values(), "exports")
        for module_name in sorted(set(sealed)):
            await self._shared_keys().serve(module_name)
        self.relay = OutboxRelay(
            self.store,
            self.broker,
            exported,
            owner=self._node_id,
            lease_ttl=self._lease_ttl,
            sealed=frozenset(sealed.values()),
            keys=self.keys,
            announcer=Announcer(self.broker, sealed, self.local) if sealed else None,
        )
        await self.relay.start()
        self.inbox = self._inbox()
        if self.inbox is not None:
            await self.inbox.start()

    async def retry_inbox(self, consumer: str, sequence: int) -> None:
        """Import the broker stream's message ``sequence`` again, for the inbox ``consumer`` that parked it.

        Raises:
            ConfigurationError: this process is not that inbox's service (or has no broker).
        """
        if self.broker is None:
            raise ConfigurationError(
                f"{consumer} is the inbox of a service: run this with that service's --modules and --broker"
            )
        inbox = self.inbox or self._inbox()
        if inbox is None or inbox.consumer_name != consumer:
            raise ConfigurationError(f"{consumer} is not this service's inbox; pass the --modules of its service")
        connected = self.inbox is not None
        if not connected:
            await self.broker.connect()
        try:
            await inbox.retry(sequence)
        finally:
            if not connected:
                await self.broker.close()

    def _inbox(self) -> Inbox | None:
        needed = self._needed_events()
        if self.broker is None or not needed:
            return None
        composition = self.composition
        named = composition.registry.named
        exporters = {n: composition.owner_of(named(n).cls).name for n in needed}
        sealed = [n for n in needed if named(n).cls.__message_subject__ is not None]
        self.keys = self.keys or self._key_share(sealed, "imports")
        encrypting = self._keyring is not None
        forgetting = Forgetting(self.broker, self.store, self.forgotten_events, encrypting=encrypting)
        return Inbox(
            self.broker,
            self.store,
            composition.registry,
            self.service,
            exporters,
            keys=self.keys,
            forgetting=forgetting,
        )

    def _key_share(self, sealed: Collection[str], does: str) -> KeyShare | None:
        """The service's key share, when it has data keys; None when none is needed.

        Raises:
            ConfigurationError: the service ``does`` (exports, imports) events that declare a data subject and its
                store does not encrypt.
        """
        if self._keyring is None or self.broker is None:
            if sealed:
                raise ConfigurationError(
                    f"this service {does} {', '.join(sorted(sealed))}, which declare a data subject: it needs "
                    "encryption at rest (a master key: master_key_file, CITADEL_MASTER_KEY_FILE) so that the "
                    "subject's events travel sealed and can be forgotten"
                )
            return None
        return KeyShare(self.broker, self.store, self._keyring)

    def _shared_keys(self) -> KeyShare:
        if self.keys is None:
            raise ConfigurationError("this service holds no data keys to share")
        return self.keys

    async def stop(self) -> None:
        """Stop the inbox, the relay and the broker connection."""
        if self.inbox is not None:
            await self.inbox.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.broker is not None:
            await self.broker.close()

    def _needed_events(self) -> list[str]:
        """Stored names of remote modules' events that local projections and process managers handle."""
        composition = self.composition
        registry = composition.registry
        needed: set[str] = set()
        for binding in composition.projections.values():
            if binding.module in self.local:
                needed.update(binding.event_types)
        for module in composition.modules.values():
            if self.is_local(module):
                for manager in module.process_managers:
                    needed.update(registry.of(t).name for t in manager.event_types)
        return sorted(n for n in needed if not self.is_local(composition.owner_of(registry.named(n).cls)))

    def _decoder(self) -> Callable[[str, bytes], Message]:
        by_name = {
            module.message_name(t): t
            for module in self.composition.modules.values()
            if self.is_local(module)
            for t in [*module.commands, *module.queries]
            if module.is_public(t)
        }

        def decode(name: str, body: bytes) -> Message:
            message_type = by_name.get(name)
            if message_type is None:
                raise ConfigurationError(f"this service does not run {name}")
            return decode_json(body, message_type)

        return decode

    async def _published_through(self, position: int, timeout: float) -> bool:
        """Whether this service has reacted to its log up to ``position`` and to the reaction chains that start
        there (``citadel.reactions``: its process managers, whose commands to other services are then committed
        there), and its outbox relay has published all that (waiting up to ``timeout``).

        Raises:
            PositionNotWritten: ``position`` is beyond this log's highest position.
        """
        await check_written(self.store, position)
        # The relay and the process managers may run in another process of this service: ``following`` watches
        # their checkpoints then.
        modules = self.composition.modules
        managers = [m.consumer_name(n) for n in sorted(self.local) for m in modules[n].process_managers]
        also = {self.relay.name: self.relay} if self.relay is not None else {}
        consumers = self._consumers.following(["citadel.outbox", *managers], also)
        return await wait_for_chains(self.store, lambda at, wait: wait_for_all(consumers, at, wait), position, timeout)

    async def _serve_locally(self, message: Message, context: DispatchContext) -> tuple[bytes, int, bool]:
        result, receipt = await self._serve(message, context)
        return encode_json(result), receipt.position, receipt.replayed

    @staticmethod
    def _forwarder(
        broker: NatsBroker, module: Module, message_type: type[Message], handler: Handler
    ) -> Callable[[Message, DispatchContext], Awaitable[Any]]:
        name = module.message_name(message_type)
        decode = _result_decoder(handler)
        is_query = issubclass(message_type, Query)
        subject = f"{broker.prefix}.rpc.{name}"

        async def forward(message: Message, context: DispatchContext) -> Any:
            retry = is_query or context.idempotency_key is not None
            if enabled():  # a PRODUCER span, the parent of the serving side's span (its traceparent travels)
                with send_span(subject):
                    body, position, replayed = await broker.request(name, encode_json(message), context, retry=retry)
            else:
                body, position, replayed = await broker.request(name, encode_json(message), context, retry=retry)
            receipt = current_receipt.get()
            if receipt is not None and not is_query:  # a query asked on the way writes nothing: not its receipt
                receipt.position, receipt.replayed, receipt.module = position, replayed, module.name
            return decode(body)

        return forward


def _result_decoder(handler: Any) -> Callable[[bytes], Any]:
    try:
        returns = typing.get_type_hints(handler).get("return")
    except Exception:
        returns = None
    if returns is None or returns is Any:
        return msgspec.json.decode
    return msgspec.json.Decoder(returns).decode
