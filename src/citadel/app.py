"""The application: the one composition root that wires modules, buses, store and consumers.

Building an ``Application`` only validates and wires (no I/O, nothing global); ``start()`` opens the store,
creates the views, and starts async projections and process managers; ``stop()`` undoes it::

    app = Application([users, orders, billing], store="sqlite:///var/shop.db")
    async with app:
        result = await app.dispatch(CreateOrder(...))
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Self

from citadel.bus import CallNext, CommandBus, Middleware, QueryBus
from citadel.context import SYSTEM, DispatchContext
from citadel.errors import AccessDenied, ConfigurationError, NotFound, StoreError
from citadel.handling import QueryContext, Receipt, current_receipt, reads_shared
from citadel.ids import new_id
from citadel.messages import Command, Event, EventRegistry, Message, Query
from citadel.messaging.consumer import Consumer
from citadel.messaging.process_manager import ProcessManagerConsumer
from citadel.module import Module, check_dependencies
from citadel.pipeline import command_step, query_step
from citadel.projection import BoundProjection
from citadel.projection_runner import AsyncProjection, Progress, rebuild
from citadel.security.encryption import Keyring
from citadel.security.rbac import Policy, authorization
from citadel.store.base import DeadLetter, EventStore, RecordedEvent
from citadel.store.url import open_store
from citadel.topology import Broker, Topology
from citadel.views import View
from citadel.workers import worker_slot

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


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """How far one projection has got."""

    name: str
    module: str
    mode: str
    position: int
    lag: int
    running: bool
    error: str | None


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
    ) -> None:
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
        self._owner: dict[type[Message], Module] = {}
        self._declare_messages()
        self.policy = policy
        guard = [] if policy is None else [self._authorization(policy)]
        self.commands = CommandBus([*guard, *middleware])
        self.queries = QueryBus([*guard, *query_middleware])
        for module in modules:
            for command_type, handler in module.commands.items():
                step = command_step(self, module, command_type, handler, conflict_retries=conflict_retries)
                self.commands.register(command_type, step)
            for query_type, handler in module.queries.items():
                self.queries.register(query_type, query_step(self, module, handler))
        self.projections: dict[str, BoundProjection] = {}
        self.views: list[View[Any]] = []
        self._bind_projections()
        self._runners: dict[str, AsyncProjection] = {}
        self._managers: list[ProcessManagerConsumer] = []
        self._by_module: dict[str, list[Consumer]] = {}
        self.node_id = ""  # this process, as the owner of consumer leases: new at every start
        self.runs_consumers = True
        """Whether ``start()`` (and ``async with``) runs the async projections and process managers here, unless
        its ``consumers`` says otherwise; False where another process runs them (``citadel consume``)."""
        self.topology = Topology(self, None, None)
        self._deployment: tuple[list[str] | None, Broker | None] = (None, None)
        self._started = False

    # -- composition -----------------------------------------------------------------------------------

    def _declare_messages(self) -> None:
        for module in self.modules.values():
            for message_type in (*module.commands, *module.queries, *module.events):
                other = self._owner.get(message_type)
                if other is not None and other is not module:
                    raise ConfigurationError(
                        f"{message_type.__name__} is declared by modules {other.name!r} and {module.name!r}; "
                        "a message type belongs to one module (the other imports it from its contract)"
                    )
                self._owner[message_type] = module
            for event_type in module.events:
                self.registry.register(event_type, name=module.message_name(event_type))
        for module in self.modules.values():
            for upcaster in module.upcasters:
                self.registry.add_upcaster(upcaster)

    def _bind_projections(self) -> None:
        for module in self.modules.values():
            for view in module.views:
                view.bind(module.name)
            self.views.extend(module.views)
            for projector in module.projections:
                binding = BoundProjection(
                    projector, module.name, self.registry, functools.partial(self.may_use, module)
                )
                if binding.name in self.projections:
                    raise ConfigurationError(f"two projections are named {binding.name!r}")
                self._check_subscriptions(module, f"projection {binding.name}", binding.event_types)
                self.projections[binding.name] = binding
                self.views.extend(v for v in binding.views if v not in self.views)
            for manager in module.process_managers:
                self._check_subscriptions(
                    module,
                    f"process manager {manager.name}",
                    [self.registry.of(t).name for t in manager.event_types],
                )

    def _check_subscriptions(self, module: Module, what: str, event_names: Sequence[str]) -> None:
        for name in event_names:
            event_type = self.registry.named(name).cls
            self.check_access(module, event_type, what=what)

    def owner_of(self, message_type: type[Message]) -> Module:
        """Return the module a message type belongs to.

        Raises:
            ConfigurationError: no module declares it.
        """
        try:
            return self._owner[message_type]
        except KeyError:
            raise ConfigurationError(f"{message_type.__name__} is not declared by any module") from None

    def _authorization(self, policy: Policy) -> Middleware:
        for grant in policy.resolve(self.permission_of):
            if not grant.own:
                continue
            covered = [t for t in self._owner if grant.matches(self.permission_of(t))]
            for message_type in covered:
                if message_type not in self.owner_of(message_type).owners:
                    raise ConfigurationError(
                        f"the policy grants {grant.permission} to {grant.role!r} on what it owns, but module "
                        f"{self.owner_of(message_type).name!r} declares no owners[{message_type.__name__}]"
                    )
        guard = authorization(policy, self.permission_of, self._target_owner)

        async def authorize(message: Message, context: DispatchContext, call_next: CallNext) -> Any:
            if type(message) in self.topology.remote:  # the service that runs it checks, with its own data
                return await call_next(message, context)
            if isinstance(message, Query):  # its owner check and its handler read the same row once
                with reads_shared():
                    return await guard(message, context, call_next)
            return await guard(message, context, call_next)

        return authorize

    def permission_of(self, message_type: type[Message]) -> str:
        """The permission a message type needs: its ``permission=``, else its stable name."""
        declared = message_type.__message_permission__
        return declared if declared else self.owner_of(message_type).message_name(message_type)

    async def _target_owner(self, message: Message, context: DispatchContext) -> str | None:
        module = self.owner_of(type(message))
        find = module.owners.get(type(message))
        if find is None:
            return None
        # The lookup only reads the module's views, as the system: no new message, so no new id.
        result: str | None = await find(message, QueryContext(self, module, context.replace(actor=SYSTEM)))
        return result

    def dependency_order(self) -> list[Module]:
        """The modules, each after the modules it depends on."""
        ordered: list[Module] = []

        def visit(module: Module) -> None:
            if module not in ordered:
                for name in module.depends_on:
                    visit(self.modules[name])
                ordered.append(module)

        for module in self.modules.values():
            visit(module)
        return ordered

    def may_use(self, module: Module, message_type: type[Message]) -> bool:
        """Whether ``module`` may use ``message_type`` (its own, or a dependency's contract message)."""
        owner = self._owner.get(message_type)
        if owner is None:
            return False
        return owner is module or (owner.name in module.depends_on and owner.is_public(message_type))

    def check_access(self, module: Module, message_type: type[Message], *, what: str | None = None) -> None:
        """Raise ``AccessDenied`` unless ``module`` may use ``message_type``.

        A module may use its own messages, and the contract messages of the modules it depends on.
        """
        owner = self.owner_of(message_type)
        if owner is module:
            return
        who = what or f"module {module.name}"
        if owner.name not in module.depends_on:
            raise AccessDenied(
                f"{who} uses {message_type.__name__} of module {owner.name!r} but module {module.name!r} does "
                f"not declare depends_on=[{owner.name!r}]"
            )
        if not owner.is_public(message_type):
            raise AccessDenied(
                f"{who} uses {message_type.__name__}, which is internal to module {owner.name!r}; "
                "only its contract's messages are public"
            )

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
                await self._start_consumers()
                await self.topology.start()
        except BaseException:
            await self.stop()
            raise
        self._started = True

    async def _start_consumers(self) -> None:
        store = self.store
        local = self.topology.local
        for binding in self.projections.values():
            if not binding.inline and binding.module in local:
                runner = self._runners[binding.name] = AsyncProjection(
                    binding, store, owner=self.node_id, lease_ttl=self.lease_ttl
                )
                self._by_module.setdefault(binding.module, []).append(runner)
        for module in self.modules.values():
            if module.name not in local:
                continue
            for consumer in self._process_managers(module):
                self._managers.append(consumer)
                self._by_module.setdefault(module.name, []).append(consumer)
        consumers: list[Consumer] = [*self._runners.values(), *self._managers]
        self._spread(consumers)
        for each in consumers:
            await each.start()

    def _spread(self, consumers: Sequence[Consumer]) -> None:
        """In one of several workers of a node, stand by for the consumers another worker comes first for, so
        the consumers spread over the workers (round robin, in the order every worker builds them) instead
        of all going to whichever started first."""
        slot = worker_slot()
        if slot is None:
            return
        index, count = slot
        for k, consumer in enumerate(consumers):
            if k % count != index:
                consumer.defer = self.lease_ttl

    async def stop(self) -> None:
        """Stop consumers and close the store."""
        await self.topology.stop()
        consumers = [*self._runners.values(), *self._managers]
        await asyncio.gather(*(c.stop() for c in consumers), return_exceptions=True)
        self._runners.clear()
        self._managers.clear()
        self._by_module.clear()
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
        query's module have processed that position (where the module runs elsewhere, its service waits).

        Raises:
            Unauthenticated, AccessDenied: the actor may not ask it at all (refused before any waiting).
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

    def _process_managers(self, module: Module) -> list[ProcessManagerConsumer]:
        return [
            ProcessManagerConsumer(
                manager.name or f"{module.name}.process_manager",
                self.store,
                manager.reactions(self.registry),
                self._dispatch_as(module),
                owner=self.node_id,
                lease_ttl=self.lease_ttl,
            )
            for manager in module.process_managers
        ]

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
        letter = await self._dead_letter(letter_id)
        if letter.consumer.startswith("inbox:"):
            await self.topology.retry_inbox(letter.consumer, letter.position)
            await self.store.resolve_dead_letter(letter_id)
            return
        record = await self._parked_event(letter)
        binding = self.projections.get(letter.consumer)
        if binding is not None:
            if not await self.store.resolve_dead_letter(letter_id, binding, record):
                raise NotFound(f"dead letter {letter_id} was resolved meanwhile")
            return
        for module in self.modules.values():
            for manager in self._process_managers(module) if self.topology.is_local(module) else ():
                if manager.name == letter.consumer:
                    await manager.react(record)
                    await self.store.resolve_dead_letter(letter_id)
                    return
        raise ConfigurationError(f"consumer {letter.consumer!r} of dead letter {letter_id} does not run here")

    async def discard_dead_letter(self, letter_id: int) -> DeadLetter:
        """Remove a parked event without processing it (its effect is given up); return what was removed.

        Raises:
            NotFound: there is no such dead letter.
        """
        letter = await self._dead_letter(letter_id)
        if not await self.store.resolve_dead_letter(letter_id):
            raise NotFound(f"dead letter {letter_id} was resolved meanwhile")
        return letter

    async def _dead_letter(self, letter_id: int) -> DeadLetter:
        for letter in await self.store.dead_letters():
            if letter.id == letter_id:
                return letter
        raise NotFound(f"there is no dead letter {letter_id}; `citadel dead-letters list` shows them")

    async def _parked_event(self, letter: DeadLetter) -> RecordedEvent:
        records = await self.store.read_all(letter.position, 1)
        if not records or records[0].event_id != letter.event_id:
            raise NotFound(f"the event {letter.event_id} of dead letter {letter.id} is no longer in the log")
        return records[0]

    def _dispatch_as(self, module: Module) -> Any:
        async def dispatch(command: Command, context: DispatchContext) -> Any:
            self.check_access(module, type(command), what=f"a process manager of {module.name}")
            return await self.commands.dispatch(command, context)

        return dispatch

    # -- consumers -------------------------------------------------------------------------------------

    @property
    def consumers(self) -> dict[str, Consumer]:
        """The running consumers by name: async projections, process managers, and the outbox relay."""
        found: dict[str, Consumer] = {**self._runners, **{m.name: m for m in self._managers}}
        if self.topology.relay is not None:
            found[self.topology.relay.name] = self.topology.relay
        return found

    async def projection_status(self) -> list[ProjectionStatus]:
        """Return each projection's position and lag (inline projections never lag)."""
        head = await self.store.head_position()
        statuses = []
        for name, binding in self.projections.items():
            runner = self._runners.get(name)
            if runner is None:
                statuses.append(ProjectionStatus(name, binding.module, "inline", head, 0, True, None))
            else:
                lag = max(0, head - runner.position)
                statuses.append(
                    ProjectionStatus(
                        name, binding.module, "async", runner.position, lag, runner.running, runner.last_error
                    )
                )
        return statuses

    async def rebuild_projection(self, name: str, *, progress: Progress | None = None) -> int:
        """Empty a projection's views and replay the log into them; return the position reached.

        Raises:
            ConfigurationError: there is no projection of that name.
        """
        binding = self.projections.get(name)
        if binding is None:
            known = ", ".join(sorted(self.projections)) or "none"
            raise ConfigurationError(f"no projection named {name!r}; known: {known}")
        return await rebuild(binding, self.store, self._runners.get(name), progress=progress, owner=self.node_id)

    async def wait_for_module(self, module: str, position: int, timeout: float) -> bool:
        """Wait until every async projection and process manager of ``module`` has processed ``position``.

        Inline projections are current with every commit, so a module without consumers never waits.
        Returns False when ``timeout`` passes first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for consumer in self._by_module.get(module, ()):
            if not await consumer.wait_for(position, max(0.0, deadline - loop.time())):
                return False
        return True

    async def wait_for_projection(self, name: str, position: int, timeout: float) -> bool:
        """Wait until projection ``name`` has processed ``position``; False on timeout."""
        runner = self._runners.get(name)
        if runner is None:
            return True  # inline projections are current with every commit
        return await runner.wait_for(position, timeout)

    def event_types(self) -> list[type[Event]]:
        """Every registered event class."""
        return [info.cls for info in self.registry]
