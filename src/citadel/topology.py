"""Where modules run: all in this process (the default), or some here and the others in other services,
reached through a broker. The modules' code is the same either way; only the wiring below changes.

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
import functools
import typing
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from citadel.bus import AsyncHandler
from citadel.consumer_set import following, wait_for_all
from citadel.context import DispatchContext
from citadel.errors import ConfigurationError, InvalidMessage, NotCaughtUp
from citadel.handling import Receipt, current_receipt
from citadel.messages import Command, Event, Message, Query, SubjectForgotten, decode_json, encode_json, subject_key
from citadel.messaging.forgetting import Announcer, Forgetting
from citadel.messaging.inbox import Inbox
from citadel.messaging.keyshare import KeyShare
from citadel.messaging.nats import NatsBroker, OutboxRelay
from citadel.reactions import check_written, wait_for_chains

if TYPE_CHECKING:
    from citadel.app import Application
    from citadel.module import Module

__all__ = ["MAX_POSITION", "Broker", "Topology", "parse_position"]

Broker = str | NatsBroker
"""A broker to other services: a ``NatsBroker`` with its service keys, or a URL (a broker without keys)."""


MAX_POSITION = (1 << 63) - 1
"""The largest log position: stores keep positions as signed 64-bit integers."""


def parse_position(token: str, modules: Sequence[str]) -> tuple[str, int]:
    """``"57"`` → ``("", 57)``; ``"orders:57"`` → ``("orders", 57)``.

    Raises:
        InvalidMessage: the token is neither a non-negative number nor ``module:number`` of a known module, or
            its number is beyond ``MAX_POSITION``.
    """
    module, _, number = token.rpartition(":")
    if not (number.isascii() and number.isdigit()) or (module and module not in modules):
        raise InvalidMessage(
            "Expected a non-negative integer, or module:integer as a command's Citadel-Position - at `$.min_position`"
        )
    if len(number) > 19:  # counted before int(), which is slow on thousands of digits and refuses more
        number = number.lstrip("0") or "0"
    if len(number) > 19 or int(number) > MAX_POSITION:
        raise InvalidMessage(f"Expected a position of at most {MAX_POSITION} - at `$.min_position`")
    return module, int(number)


class Topology:
    """The part of an application this process runs, and its broker to the rest."""

    def __init__(self, app: Application, local: Sequence[str] | None, broker: Broker | None) -> None:
        names = set(app.modules)
        unknown = set(local or ()) - names
        if unknown:
            raise ConfigurationError(
                f"unknown module(s) {', '.join(sorted(unknown))}; the application has {', '.join(app.modules)}"
            )
        self.app = app
        app.registry.register(SubjectForgotten)  # the framework's own event: forgetting appends it to this log
        for event_type in (t for m in app.modules.values() for t in m.events if issubclass(t, SubjectForgotten)):
            if event_type.__message_subject__ is not None:  # it is written as the subject's key is deleted
                raise ConfigurationError(f"{event_type.__name__} records a forgotten subject: it declares no subject=")
        self.local = set(local) if local else names
        self.partial = self.local != names
        if self.partial and broker is None:
            raise ConfigurationError(
                "running only some modules needs a broker to reach the others: pass --broker nats://..."
            )
        self.broker = broker if isinstance(broker, NatsBroker) else NatsBroker(broker) if broker else None
        self.relay: OutboxRelay | None = None
        self.inbox: Inbox | None = None
        self.keys: KeyShare | None = None
        self._local: dict[type[Message], AsyncHandler] = {}  # the handlers of forwarded messages, kept

    def is_local(self, module: Module) -> bool:
        """Whether this process runs ``module``."""
        return self.runs(module.name)

    @property
    def remote(self) -> Collection[type[Message]]:
        """The message types this process forwards to other services."""
        return self._local.keys()

    def runs(self, module: str) -> bool:
        """Whether this process runs the module named ``module``."""
        return not self.partial or module in self.local

    def forgotten_events(self, subject: str, module: str) -> list[Event]:
        """The events that record in this service's log that ``module`` forgot ``subject``: ``SubjectForgotten``,
        and one of each subclass of it that a local module lists among its events (for its projections)."""
        types: list[type[SubjectForgotten]] = [SubjectForgotten]
        for m in self.app.modules.values():
            if self.is_local(m):
                types += [t for t in m.events if issubclass(t, SubjectForgotten) and t is not SubjectForgotten]
        return [t(subject=subject, key_id=subject_key(subject), module=module) for t in types]

    def position_token(self, module: str, position: int) -> str:
        """A position as clients see it: the number, or ``module:number`` in a partial topology."""
        return f"{module}:{position}" if self.partial else str(position)

    async def catch_up(self, module: str, position: int, source: str, timeout: float) -> None:
        """Wait until the read models of local ``module`` reflect position ``position`` of ``source``'s log
        ("" for this service's own log), as the module docstring describes.

        Raises:
            PositionNotWritten: ``position`` is beyond the highest position written to this service's own log.
            NotCaughtUp: not within ``timeout`` seconds.
        """
        if not source or self.runs(source):  # another service's log: its relay's answer bounds the wait instead
            await check_written(self.app.store, position)
        if not await self._caught_up(module, position, source, timeout):
            where = f"{source}:{position}" if source else str(position)
            raise NotCaughtUp(f"the read models of {module} have not reached position {where} yet")

    async def catch_up_for(self, message: Message, context: DispatchContext) -> None:
        """Wait until the read models of ``message``'s module reflect ``context.min_position``, once the policy's
        role-level check has let its actor through: who may not send ``message`` at all is refused before any
        waiting. (Whether it owns the target is checked later, on the caught-up read models.)

        Raises:
            Unauthenticated, AccessDenied: the actor may not send ``message``.
            PositionNotWritten, NotCaughtUp: see ``catch_up``.
        """
        app = self.app
        if app.policy is not None:
            app.policy.precheck(context.actor, app.permission_of(type(message)))
        module = app.owner_of(type(message)).name
        await self.catch_up(module, context.min_position, context.position_of, context.wait)

    async def _caught_up(self, module: str, position: int, source: str, timeout: float) -> bool:
        app = self.app
        if not source or self.runs(source) or self.broker is None:
            return await app.wait_for_module(module, position, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Asked even with no inbox here: the answer also says that the source's reactions, the commands they sent
        # to this service included, are done.
        sequence = await self.broker.published_through(source, position, timeout)
        if sequence is None:
            return False
        if self.inbox is not None and not await self.inbox.wait_through(sequence, deadline - loop.time()):
            return False
        return await app.wait_for_module(module, await app.store.last_position(), max(0.0, deadline - loop.time()))

    @property
    def service(self) -> str:
        """This service's name: its local modules, joined."""
        return "+".join(sorted(self.local))

    async def start(self) -> None:
        """Connect the broker; forward remote modules' messages, serve local ones, start relay and inbox."""
        if self.broker is None:
            return
        app = self.app
        await self.broker.connect()
        decode = self._decoder()
        for module in app.modules.values():
            if self.is_local(module):
                await self.broker.serve(module.name, decode, self._serve_locally)
                await self.broker.serve_published(module.name, self._published_through)
                continue
            for command_type, handler in module.commands.items():
                if module.is_public(command_type):
                    forward = self._forwarder(module, command_type, handler)
                    self._local[command_type] = app.commands.replace(command_type, forward)
            for query_type, handler in module.queries.items():
                if module.is_public(query_type):
                    forward = self._forwarder(module, query_type, handler)
                    self._local[query_type] = app.queries.replace(query_type, forward)
        public = [(m.name, t) for m in app.modules.values() if self.is_local(m) for t in m.events if m.is_public(t)]
        exported = frozenset(app.registry.of(t).name for _, t in public)
        sealed = {m: app.registry.of(t).name for m, t in public if t.__message_subject__ is not None}
        self.keys = self._key_share(sealed.values(), "exports")
        for module_name in sorted(set(sealed)):
            await self._shared_keys().serve(module_name)
        self.relay = OutboxRelay(
            app.store,
            self.broker,
            exported,
            owner=app.node_id,
            lease_ttl=app.lease_ttl,
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
        app = self.app
        exporters = {n: app.owner_of(app.registry.named(n).cls).name for n in needed}
        sealed = [n for n in needed if app.registry.named(n).cls.__message_subject__ is not None]
        self.keys = self.keys or self._key_share(sealed, "imports")
        forgetting = Forgetting(self.broker, app.store, self.forgotten_events, encrypting=app.keyring is not None)
        return Inbox(
            self.broker, app.store, app.registry, self.service, exporters, keys=self.keys, forgetting=forgetting
        )

    def _key_share(self, sealed: Collection[str], does: str) -> KeyShare | None:
        """The service's key share, when it has data keys; None when none is needed.

        Raises:
            ConfigurationError: the service ``does`` (exports, imports) events that declare a data subject and its
                store does not encrypt.
        """
        app = self.app
        if app.keyring is None or self.broker is None:
            if sealed:
                raise ConfigurationError(
                    f"this service {does} {', '.join(sorted(sealed))}, which declare a data subject: it needs "
                    "encryption at rest (a master key: master_key_file, CITADEL_MASTER_KEY_FILE) so that the "
                    "subject's events travel sealed and can be forgotten"
                )
            return None
        return KeyShare(self.broker, app.store, app.keyring)

    def _shared_keys(self) -> KeyShare:
        if self.keys is None:
            raise ConfigurationError("this service holds no data keys to share")
        return self.keys

    async def stop(self) -> None:
        """Stop the inbox, the relay and the broker connection; local handlers take their messages back."""
        for message_type, handler in self._local.items():
            if issubclass(message_type, Command):
                self.app.commands.replace(message_type, handler)
            elif issubclass(message_type, Query):
                self.app.queries.replace(message_type, handler)
        self._local.clear()
        if self.inbox is not None:
            await self.inbox.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.broker is not None:
            await self.broker.close()

    def _needed_events(self) -> list[str]:
        """Stored names of remote modules' events that local projections and process managers handle."""
        app = self.app
        needed: set[str] = set()
        for binding in app.projections.values():
            if binding.module in self.local:
                needed.update(binding.event_types)
        for module in app.modules.values():
            if self.is_local(module):
                for manager in module.process_managers:
                    needed.update(app.registry.of(t).name for t in manager.event_types)
        return sorted(n for n in needed if not self.is_local(app.owner_of(app.registry.named(n).cls)))

    def _decoder(self) -> Callable[[str, bytes], Message]:
        by_name = {
            module.message_name(t): t
            for module in self.app.modules.values()
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
        app = self.app
        await check_written(app.store, position)
        # The relay and the process managers may run in another process of this service: ``following`` watches
        # their checkpoints then.
        managers = [m.consumer_name(n) for n in sorted(self.local) for m in app.modules[n].process_managers]
        consumers = following(app, ["citadel.outbox", *managers])
        return await wait_for_chains(app.store, functools.partial(wait_for_all, consumers), position, timeout)

    async def _serve_locally(self, message: Message, context: DispatchContext) -> tuple[bytes, int, bool]:
        app = self.app
        if context.min_position:
            await self.catch_up_for(message, context)
        receipt = Receipt()
        token = current_receipt.set(receipt)
        try:
            if isinstance(message, Command):
                result = await app.commands.dispatch(message, context)
            else:
                result = await app.queries.dispatch(message, context)  # type: ignore[arg-type]
        finally:
            current_receipt.reset(token)
        return encode_json(result), receipt.position, receipt.replayed

    def _forwarder(
        self, module: Module, message_type: type[Message], handler: Any
    ) -> Callable[[Message, DispatchContext], Awaitable[Any]]:
        broker = self.broker
        if broker is None:
            raise ConfigurationError("no broker")
        name = module.message_name(message_type)
        decode = _result_decoder(handler)
        is_query = issubclass(message_type, Query)

        async def forward(message: Message, context: DispatchContext) -> Any:
            body, position, replayed = await broker.request(
                name,
                encode_json(message),
                context,
                retry=is_query or context.idempotency_key is not None,
            )
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
