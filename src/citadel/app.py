"""The application: the one composition root that wires modules, buses, store and consumers.

Building an ``Application`` only validates and wires (no I/O, nothing global); ``start()`` opens the store,
creates the views, and starts async projections and process managers; ``stop()`` undoes it::

    app = Application([users, orders, billing], store="sqlite:///var/shop.db")
    async with app:
        result = await app.dispatch(CreateOrder(...))
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Self

from citadel.authorizing import authorization_middleware
from citadel.bus import CommandBus, Middleware, QueryBus
from citadel.composition import MessageOwnership, bind_read_models, in_dependency_order
from citadel.consumer_set import ConsumerSet
from citadel.context import DispatchContext
from citadel.dead_letters import discard_dead_letter, retry_dead_letter
from citadel.errors import ConfigurationError, StoreError
from citadel.handling import Receipt, current_receipt
from citadel.ids import new_id
from citadel.messages import Command, Event, EventRegistry, Message, Query
from citadel.messaging.consumer import Consumer
from citadel.module import Module, check_dependencies
from citadel.pipeline import command_step, query_step
from citadel.projection_admin import ProjectionStatus, find_projection, projection_statuses
from citadel.projection_runner import Progress, rebuild
from citadel.security.encryption import Keyring
from citadel.security.rbac import Policy
from citadel.store.base import DeadLetter, EventStore
from citadel.store.url import open_store
from citadel.topology import Broker, Topology

__all__ = ["Application", "Outcome", "ProjectionStatus"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A command's result, the position of its last event, and whether it was replayed by idempotency."""

    result: Any
    position: int
    replayed: bool
    token: str = ""
    """The position as clients pass it back in ``min_position``: the number itself when every module runs
    here, else ``module:number`` (each service has its own log; see ``citadel.topology``)."""


class Application:
    """Composes modules into one running system.

    Args:
        modules: the business modules; names unique, ``depends_on`` acyclic.
        store: a store URL (``sqlite:///var/app.db``) or an ``EventStore``; may be overridden in ``start()``.
        middleware: command-bus middleware, outermost first (query-bus middleware: ``query_middleware``).
        conflict_retries: how often a command is re-run on fresh state after a concurrency conflict.
        policy: who may send which message (``citadel.security.rbac``); None lets everyone send everything.
        keyring: encrypt stored payloads at rest with these keys (``citadel.security.encryption``).
        idempotency_ttl: seconds a command's idempotency record is kept (a store opened from a URL).
        lease_ttl: seconds a process holds a consumer's lease without renewing it; another process takes
            over a dead holder's consumers after at most this long.
        title, version, description: the ``info`` of its OpenAPI document (Markdown description); without a
            title, the server's (``create_asgi``'s ``title``).

    Raises:
        ConfigurationError: the modules are wired inconsistently (the message says how to fix it).
    """

    def __init__(
        self,
        modules: Sequence[Module],
        *,
        store: str | EventStore = "sqlite:///citadel.db",
        middleware: Sequence[Middleware] = (),
        query_middleware: Sequence[Middleware] = (),
        conflict_retries: int = 3,
        lease_ttl: float = 5.0,
        policy: Policy | None = None,
        keyring: Keyring | None = None,
        idempotency_ttl: float = 86400.0,
        title: str | None = None,
        version: str = "1",
        description: str = "",
    ) -> None:
        self.title, self.version, self.description = title, version, description
        self.keyring = keyring
        self.idempotency_ttl = idempotency_ttl
        self.lease_ttl = lease_ttl
        self.modules = {m.name: m for m in modules}
        if len(self.modules) != len(modules):
            raise ConfigurationError("two modules share a name; module names must be unique")
        check_dependencies(self.modules)
        self._store_spec = store
        self._store: EventStore | None = None
        self.registry = EventRegistry()
        self._ownership = MessageOwnership(self.modules, self.registry)
        self.policy = policy
        guard = [] if policy is None else [authorization_middleware(self, self._ownership, policy)]
        self.commands = CommandBus([*guard, *middleware])
        self.queries = QueryBus([*guard, *query_middleware])
        for module in modules:
            for command_type, handler in module.commands.items():
                step = command_step(self, module, command_type, handler, conflict_retries=conflict_retries)
                self.commands.register(command_type, step)
            for query_type, handler in module.queries.items():
                self.queries.register(query_type, query_step(self, module, handler))
        self.projections, self.views = bind_read_models(self.modules, self.registry, self._ownership)
        self._consumers = ConsumerSet(self)
        self.node_id = ""  # this process, as the owner of consumer leases: new at every start
        self.runs_consumers = True
        """Whether ``start()`` (and ``async with``) runs the async projections and process managers here, unless
        its ``consumers`` says otherwise; False where another process runs them (``citadel consume``)."""
        self.topology = Topology(self, None, None)
        self._deployment: tuple[list[str] | None, Broker | None] = (None, None)
        self._started = False

    # -- composition -----------------------------------------------------------------------------------

    def owner_of(self, message_type: type[Message]) -> Module:
        """Return the module a message type belongs to.

        Raises:
            ConfigurationError: no module declares it.
        """
        return self._ownership.owner_of(message_type)

    def permission_of(self, message_type: type[Message]) -> str:
        """The permission a message type needs: its ``permission=``, else its stable name."""
        return self._ownership.permission_of(message_type)

    def dependency_order(self) -> list[Module]:
        """The modules, each after the modules it depends on."""
        return in_dependency_order(self.modules)

    def may_use(self, module: Module, message_type: type[Message]) -> bool:
        """Whether ``module`` may use ``message_type`` (its own, or a dependency's contract message)."""
        return self._ownership.may_use(module, message_type)

    def check_access(self, module: Module, message_type: type[Message], *, what: str | None = None) -> None:
        """Raise ``AccessDenied`` unless ``module`` may use ``message_type``.

        A module may use its own messages, and the contract messages of the modules it depends on.
        """
        self._ownership.check_access(module, message_type, what=what)

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def store(self) -> EventStore:
        """The open event store.

        Raises:
            StoreError: the application has not been started.
        """
        if self._store is None:
            raise StoreError("the application is not started; use `async with app:` or `await app.start()`")
        return self._store

    def deploy(self, *, modules: Sequence[str] | None = None, broker: Broker | None = None) -> None:
        """Run only ``modules`` here and reach the others through ``broker`` (a ``NatsBroker`` with its service
        keys) when started (``start`` may still override either)."""
        self._deployment = (list(modules) if modules else None, broker)

    def use_store(self, store: str | EventStore) -> None:
        """Replace the store given to the constructor (before ``start``), e.g. from settings."""
        if self._started:
            raise ConfigurationError("the store cannot change while the application runs; stop it first")
        self._store_spec = store

    @property
    def store_spec(self) -> str | EventStore:
        """The store URL (or store) the application will open."""
        return self._store_spec

    async def start(
        self,
        *,
        store: str | EventStore | None = None,
        consumers: bool | None = None,
        modules: Sequence[str] | None = None,
        broker: Broker | None = None,
    ) -> None:
        """Open the store (``store`` overrides the constructor's), create views, and unless ``consumers`` is
        False (tools that only read or rebuild; None: ``runs_consumers``), start async projections and process
        managers.

        With ``modules``, run only those here and reach the others through ``broker`` (a ``NatsBroker`` with the
        service keys; a bare URL cannot connect), where other services run them (see ``citadel.topology``).
        """
        if self._started:
            return
        planned_modules, planned_broker = self._deployment
        self.topology = Topology(self, modules or planned_modules, broker or planned_broker)
        spec = store if store is not None else self._store_spec
        # A new id at every start: forked worker processes built from one application object must not share it.
        self.node_id = new_id()
        if isinstance(spec, str):
            self._store = open_store(spec, self.registry, keyring=self.keyring, idempotency_ttl=self.idempotency_ttl)
        else:
            self._store = spec
        local = self.topology.local
        for binding in self.projections.values():
            if binding.inline and binding.module in local:
                self._store.add_inline_projection(binding)
        await self._store.open()
        try:
            await self._store.ensure_views([v for v in self.views if v.module in local])
            for module in self.dependency_order():
                if module.migrations and module.name in local:
                    await self._store.migrate_module(module.name, module.migrations)
            if consumers is None:
                consumers = self.runs_consumers
            if consumers:
                await self._consumers.start()
                await self.topology.start()
        except BaseException:
            await self.stop()
            raise
        self._started = True

    async def stop(self) -> None:
        """Stop consumers and close the store."""
        await self.topology.stop()
        await self._consumers.stop()
        if self._store is not None:
            await self._store.close()
            self._store = None
        self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- using it --------------------------------------------------------------------------------------

    def dispatch(self, command: Command, context: DispatchContext | None = None) -> Coroutine[Any, Any, Any]:
        """Dispatch a command through the command bus and return its handler's result (a coroutine to await).

        Raises:
            UnknownCommand, DomainError, ConcurrencyError, IdempotencyConflict: see ``citadel.errors``.
        """
        return self.commands.dispatch(command, context)  # the bus's coroutine itself: no wrapper per command

    async def execute(self, command: Command, context: DispatchContext | None = None) -> Outcome:
        """Dispatch a command and return its result with the position of its last event."""
        receipt = Receipt()
        token = current_receipt.set(receipt)
        try:
            result = await self.commands.dispatch(command, context)
        finally:
            current_receipt.reset(token)
        at = self.topology.position_token(receipt.module or self.owner_of(type(command)).name, receipt.position)
        return Outcome(result, receipt.position, receipt.replayed, at)

    def query(self, query: Query, context: DispatchContext | None = None) -> Coroutine[Any, Any, Any]:
        """Run a query through the query bus and return its handler's result (a coroutine to await).

        With ``context.min_position``, first wait (up to ``context.wait`` seconds) until the read models of the
        query's module have processed that position and the reactions to it that change the module
        (``citadel.reactions``); where the module runs elsewhere, its service waits.

        Raises:
            Unauthenticated, AccessDenied: the actor may not ask it at all (refused before any waiting).
            PositionNotWritten: the position is beyond the highest one written to the log (refused at once).
            NotCaughtUp: they had not in time.
        """
        if context is not None and context.min_position:
            return self._query_caught_up(query, context)
        return self.queries.dispatch(query, context)  # the bus's coroutine itself: no wrapper per query

    async def _query_caught_up(self, query: Query, context: DispatchContext) -> Any:
        if self.topology.runs(self.owner_of(type(query)).name):
            await self.topology.catch_up_for(query, context)
        return await self.queries.dispatch(query, context)

    async def query_from(self, module: Module, query: Query, context: DispatchContext) -> Any:
        """Run a query on behalf of ``module`` (which must be allowed to ask it)."""
        self.check_access(module, type(query))
        return await self.queries.dispatch(query, context)

    # -- dead letters ----------------------------------------------------------------------------------

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """The events consumers gave up on (parked after their retries), oldest first."""
        return await self.store.dead_letters(consumer)

    async def retry_dead_letter(self, letter_id: int) -> None:
        """Process a parked event again, as its consumer would, and remove it from the dead letters.

        A projection applies it in the same transaction that removes the letter; a process manager dispatches its
        commands again (with the same idempotency keys, so what succeeded before is not repeated); an inbox
        imports the broker's message again (once, by its message id).

        Raises:
            NotFound: there is no such dead letter (already retried or discarded?).
            ConfigurationError: its consumer is not part of this application or this service.
            Whatever processing raises: the event stays parked, with the cause to fix.
        """
        await retry_dead_letter(self, self._consumers, letter_id)

    async def discard_dead_letter(self, letter_id: int) -> DeadLetter:
        """Remove a parked event without processing it (its effect is given up); return what was removed.

        Raises:
            NotFound: there is no such dead letter.
        """
        return await discard_dead_letter(self.store, letter_id)

    # -- consumers -------------------------------------------------------------------------------------

    @property
    def consumers(self) -> dict[str, Consumer]:
        """The running consumers by name: async projections, process managers, and the outbox relay."""
        found = self._consumers.by_name()
        if self.topology.relay is not None:
            found[self.topology.relay.name] = self.topology.relay
        return found

    async def projection_status(self) -> list[ProjectionStatus]:
        """Return each projection's position and lag (inline projections never lag)."""
        return await projection_statuses(self.projections, self._consumers.projections, self.store)

    async def rebuild_projection(self, name: str, *, progress: Progress | None = None) -> int:
        """Empty a projection's views and replay the log into them; return the position reached.

        Raises:
            ConfigurationError: there is no projection of that name.
        """
        binding = find_projection(self.projections, name)
        runner = self._consumers.projections.get(name)
        return await rebuild(binding, self.store, runner, progress=progress, owner=self.node_id)

    async def wait_for_module(self, module: str, position: int, timeout: float) -> bool:
        """Wait until the async projections of ``module``, and the process managers that can lead to it, have
        processed ``position`` and the reaction chains that start at or before it (``citadel.reactions``).

        Inline projections are current with every commit, so a module that no consumer changes never waits.
        Returns False when ``timeout`` passes first.
        """
        return await self._consumers.wait_for_module(module, position, timeout)

    async def wait_for_projection(self, name: str, position: int, timeout: float) -> bool:
        """Wait until projection ``name`` has processed ``position``; False on timeout."""
        return await self._consumers.wait_for_projection(name, position, timeout)

    def event_types(self) -> list[type[Event]]:
        """Every registered event class."""
        return [info.cls for info in self.registry]
