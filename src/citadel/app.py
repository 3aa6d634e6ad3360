"""The application: the one composition root that wires modules, buses, store and consumers.

Building an ``Application`` only validates and wires (no I/O, nothing global); ``start()`` opens the store,
creates the views, and starts async projections and process managers, as its ``Deployment`` says; ``stop()``
undoes it::

    app = Application([users, orders, billing], store="sqlite:///var/shop.db")
    async with app:
        result = await app.dispatch(CreateOrder(...))

The parts live beside it, each given what it needs rather than the application: ``citadel.composition`` (the
modules checked and bound), ``citadel.placement`` (which modules run here), ``citadel.consumer_set`` (consumer
supervision), ``citadel.topology`` (the link to other services), and ``citadel.operating`` (dead letters,
projection status and rebuilds, mixed in).
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from citadel.authorizing import authorization_middleware
from citadel.bus import AsyncHandler, CommandBus, Handler, Middleware, QueryBus
from citadel.composition import Composition
from citadel.consumer_set import ConsumerSet
from citadel.context import DispatchContext
from citadel.deployment import Deployment
from citadel.errors import StoreError
from citadel.handling import Receipt, current_receipt
from citadel.ids import new_id
from citadel.messages import Command, Event, Message, Query
from citadel.module import Module
from citadel.operating import Operating
from citadel.pipeline import command_step, query_step
from citadel.placement import HERE, Placement, Routes
from citadel.projection_admin import ProjectionStatus
from citadel.security.encryption import Keyring
from citadel.security.rbac import Policy
from citadel.store.base import EventStore
from citadel.store.url import open_store
from citadel.topology import Broker, Topology
from citadel.views import View, ViewReader

__all__ = ["Application", "Outcome", "ProjectionStatus"]

D = TypeVar("D")
_Steps = dict[type[Any], tuple[Module, Handler, AsyncHandler]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A command's result, the position of its last event, and whether it was replayed by idempotency."""

    result: Any
    position: int
    replayed: bool
    token: str = ""
    """The position as clients pass it back in ``min_position``: the number itself when every module runs
    here, else ``module:number`` (each service has its own log; see ``citadel.topology``)."""


class Application(Operating):
    """Composes modules into one running system.

    Args:
        modules: the business modules; names unique, ``depends_on`` acyclic.
        store: a store URL (``sqlite:///var/app.db``) or an ``EventStore``; a ``Deployment`` may name another.
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
        self.composition = Composition(modules)
        self.modules = self.composition.modules
        self.registry = self.composition.registry
        self.projections, self.views = self.composition.projections, self.composition.views
        self.policy = policy
        self._store_spec = store
        self.deployment = Deployment()
        """What ``start()`` runs when it is given no deployment (``citadel.configure`` sets it from settings)."""
        self._store: EventStore | None = None
        self._placement = Placement(self.modules, broker=False)
        self._consumers: ConsumerSet | None = None
        self._topology: Topology | None = None
        self._forwarded: set[type[Message]] = set()  # what the buses forward to other services; kept in place
        ownership = self.composition.ownership
        guard = [] if policy is None else [authorization_middleware(self, ownership, policy, self._forwarded)]
        self.commands = CommandBus([*guard, *middleware])
        self.queries = QueryBus([*guard, *query_middleware])
        self._command_steps: _Steps = {}
        self._query_steps: _Steps = {}
        for module in modules:
            for command_type, handler in module.commands.items():
                step = command_step(self, module, command_type, handler, conflict_retries=conflict_retries)
                self._command_steps[command_type] = (module, handler, step)
                self.commands.register(command_type, step, name=module.message_name(command_type))
            for query_type, handler in module.queries.items():
                asked = query_step(self, module, query_type, handler)
                self._query_steps[query_type] = (module, handler, asked)
                self.queries.register(query_type, asked, name=module.message_name(query_type))
        self.node_id = ""  # this process, as the owner of consumer leases: new at every start
        self._started = False

    # -- composition -----------------------------------------------------------------------------------

    def owner_of(self, message_type: type[Message]) -> Module:
        """Return the module a message type belongs to.

        Raises:
            ConfigurationError: no module declares it.
        """
        return self.composition.ownership.owner_of(message_type)

    def permission_of(self, message_type: type[Message]) -> str:
        """The permission a message type needs: its ``permission=``, else its stable name."""
        return self.composition.ownership.permission_of(message_type)

    def dependency_order(self) -> list[Module]:
        """The modules, each after the modules it depends on."""
        return self.composition.dependency_order()

    def may_use(self, module: Module, message_type: type[Message]) -> bool:
        """Whether ``module`` may use ``message_type`` (its own, or a dependency's contract message)."""
        return self.composition.ownership.may_use(module, message_type)

    def check_access(self, module: Module, message_type: type[Message], *, what: str | None = None) -> None:
        """Raise ``AccessDenied`` unless ``module`` may use ``message_type``.

        A module may use its own messages, and the contract messages of the modules it depends on.
        """
        self.composition.check_access(module, message_type, what=what)

    def view_of(self, module: str, view: View[D]) -> View[D]:
        """This application's copy of ``view`` (its declaration, as modules write it), which ``module`` owns: what
        its store reads and writes (``app.store.view_reader(app.view_of("orders", ORDERS))``).

        Raises:
            AccessDenied: ``module`` does not own the view.
        """
        return self.composition.view_of(module, view)

    def view_reader(self, view: View[D]) -> ViewReader[D]:
        """Read access to the committed documents of one of this application's views, by its declaration (for
        tests and tools; handlers read through their context).

        Raises:
            ConfigurationError: no module of the application declares the view.
            StoreError: the application is not started.
        """
        return self.store.view_reader(self.view_of(self.composition.home_of(view), view))

    def event_types(self) -> list[type[Event]]:
        """Every registered event class."""
        return [info.cls for info in self.registry]

    # -- routing ---------------------------------------------------------------------------------------

    def _route(self, routes: Routes) -> None:
        """Register each message's handler on its bus where ``routes`` place it: a forwarder to the service that
        runs its module, else its module's step here."""
        self._forwarded.clear()
        for bus, steps in ((self.commands, self._command_steps), (self.queries, self._query_steps)):
            for message_type, (module, handler, step) in steps.items():
                remote = routes.remote(module, message_type, handler)
                if remote is not None:
                    self._forwarded.add(message_type)
                bus.replace(message_type, remote or step)

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

    @property
    def store_spec(self) -> str | EventStore:
        """The store URL (or store) the application will open: its deployment's, else its own."""
        return self.deployment.store if self.deployment.store is not None else self._store_spec

    @property
    def runs_consumers(self) -> bool:
        """Whether ``start()`` without a deployment runs the consumers here (``deployment.consumers``)."""
        return self.deployment.consumers

    @runs_consumers.setter
    def runs_consumers(self, value: bool) -> None:
        self.deployment = self.deployment.replace(consumers=value)

    @property
    def topology(self) -> Topology:
        """This process's part of the application and its link to the other services, once started.

        Raises:
            StoreError: the application has never been started.
        """
        if self._topology is None:
            raise StoreError("the application is not started; use `async with app:` or `await app.start()`")
        return self._topology

    async def start(
        self,
        deployment: Deployment | None = None,
        *,
        store: str | EventStore | None = None,
        consumers: bool | None = None,
        modules: Sequence[str] | None = None,
        broker: Broker | None = None,
    ) -> None:
        """Open the store, create the views of the modules that run here, run their migrations and, unless the
        deployment says otherwise, start their async projections and process managers, and the link to the
        services that run the other modules (see ``citadel.deployment``).

        ``deployment`` defaults to ``self.deployment``; ``store``, ``consumers``, ``modules`` and ``broker``
        change those fields of it.
        """
        if self._started:
            return
        plan = deployment or self.deployment
        changes = {"store": store, "consumers": consumers, "modules": modules or None, "broker": broker or None}
        plan = plan.replace(**{k: v for k, v in changes.items() if v is not None})
        placement = Placement(self.modules, plan.modules, broker=plan.broker is not None)
        spec = plan.store if plan.store is not None else self._store_spec
        # A new id at every start: forked worker processes built from one application object must not share it.
        self.node_id = new_id()
        if isinstance(spec, str):
            spec = open_store(spec, self.registry, keyring=self.keyring, idempotency_ttl=self.idempotency_ttl)
        self._store, self._placement = spec, placement
        self._consumers = ConsumerSet(
            self.composition,
            spec,
            local=placement.local,
            dispatch=self.commands.dispatch,
            node_id=self.node_id,
            lease_ttl=self.lease_ttl,
        )
        self._topology = Topology(
            self.composition,
            placement,
            plan.broker,
            store=spec,
            consumers=self._consumers,
            serve=self._serve_here,
            node_id=self.node_id,
            lease_ttl=self.lease_ttl,
            keyring=self.keyring,
        )
        await self._open(spec, placement, plan)
        self._started = True

    async def _open(self, store: EventStore, placement: Placement, plan: Deployment) -> None:
        for binding in self.projections.values():
            if binding.inline and placement.runs(binding.module):
                store.add_inline_projection(binding)
        await store.open()
        try:
            await store.ensure_views([v for v in self.views if v.module is not None and placement.runs(v.module)])
            for module in self.dependency_order():
                if module.migrations and placement.runs(module.name):
                    await store.migrate_module(module.name, module.migrations)
            if plan.consumers and self._consumers is not None and self._topology is not None:
                await self._consumers.start(plan.worker)
                await self._topology.start()
                if placement.partial:
                    self._route(self._topology)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop consumers and close the store; every message is handled here again until the next start."""
        if self._forwarded:
            self._route(HERE)
        if self._topology is not None:
            await self._topology.stop()
        if self._consumers is not None:
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
        result, receipt = await self._dispatch_here(command, context)
        module = receipt.module or self.owner_of(type(command)).name
        return Outcome(
            result, receipt.position, receipt.replayed, self._placement.position_token(module, receipt.position)
        )

    async def _dispatch_here(self, message: Message, context: DispatchContext | None) -> tuple[Any, Receipt]:
        """Dispatch ``message`` through its bus; return its result and the receipt its command step fills in."""
        receipt = Receipt()
        token = current_receipt.set(receipt)
        try:
            if isinstance(message, Command):
                return await self.commands.dispatch(message, context), receipt
            return await self.queries.dispatch(message, context), receipt  # type: ignore[arg-type]
        finally:
            current_receipt.reset(token)

    async def _serve_here(self, message: Message, context: DispatchContext) -> tuple[Any, Receipt]:
        """Handle a message another service sent: first catch up to its ``min_position``, if it has one."""
        if context.min_position:
            await self._catch_up_for(message, context)
        return await self._dispatch_here(message, context)

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
        if self._placement.runs(self.owner_of(type(query)).name):
            await self._catch_up_for(query, context)
        return await self.queries.dispatch(query, context)

    async def _catch_up_for(self, message: Message, context: DispatchContext) -> None:
        """Wait until the read models of ``message``'s module reflect ``context.min_position``, once the policy's
        role-level check has let its actor through: who may not send ``message`` at all is refused before any
        waiting. (Whether it owns the target is checked later, on the caught-up read models.)"""
        if self.policy is not None:
            self.policy.precheck(context.actor, self.permission_of(type(message)))
        module = self.owner_of(type(message)).name
        await self.topology.catch_up(module, context.min_position, context.position_of, context.wait)

    async def query_from(self, module: Module, query: Query, context: DispatchContext) -> Any:
        """Run a query on behalf of ``module`` (which must be allowed to ask it)."""
        self.composition.ownership.check_access(module, type(query))
        return await self.queries.dispatch(query, context)

    def forgotten_events(self, subject: str, module: str) -> list[Event]:
        """The events that record in this log that ``module`` forgot ``subject`` (``Topology.forgotten_events``)."""
        return self.topology.forgotten_events(subject, module)
