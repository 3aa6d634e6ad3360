"""Modules: one business domain each, with a small public contract and its own tables.

    orders = Module(
        "orders",
        package=__name__,                 # where its code lives (the boundary checker reads it)
        contract=contract,                # the Python module of public commands, queries, events
        commands={CreateOrder: create_order, CancelOrder: cancel_order},
        queries={GetOrder: get_order},
        events=[OrderCreated, OrderCancelled],
        projections=[OrderSummaries()],
        depends_on=["content"],           # modules whose contracts this one uses
    )

``owners`` tell, per command or query, who owns its target (``async (message, ctx) -> subject``), for
policies that grant a permission only on what the actor owns.

``migrations`` are the module's own versioned SQL steps (append new ones; never edit a released one), run
once each, in dependency order across modules; ``{table:name}`` names the module's table ``name``.

Only the message types of the contract are public: other modules may import them, dispatch those commands
and queries, and react to those events; HTTP exposes them. Everything else stays internal. ``contract`` may
also be a list of message types (the boundary checker then expects them in ``<package>.contract``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from citadel.bus import Handler
from citadel.errors import ConfigurationError, HandlerMismatch
from citadel.messages import Command, Event, Message, Query, Upcaster
from citadel.messaging.process_manager import ProcessManager
from citadel.projection import Projector
from citadel.views import View

__all__ = ["Module", "check_dependencies", "dependency_cycles"]

_MODULE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Module:
    """A business module: its name, contract, handlers, projections, views and dependencies."""

    def __init__(
        self,
        name: str,
        *,
        package: str | None = None,
        contract: ModuleType | Sequence[type[Message]] | None = None,
        commands: Mapping[type[Command], Handler] | None = None,
        queries: Mapping[type[Query], Handler] | None = None,
        events: Sequence[type[Event]] = (),
        projections: Sequence[Projector] = (),
        process_managers: Sequence[ProcessManager] = (),
        views: Sequence[View[Any]] = (),
        depends_on: Sequence[str] = (),
        upcasters: Sequence[Upcaster] = (),
        migrations: Sequence[str] = (),
        owners: Mapping[type[Message], Any] | None = None,
    ) -> None:
        if not _MODULE_NAME.fullmatch(name):
            raise ConfigurationError(f"module names are lowercase identifiers like 'billing', got {name!r}")
        if name in depends_on:
            raise ConfigurationError(f"module {name!r} cannot depend on itself")
        _check_kind(name, "commands", dict(commands or {}), Command)
        _check_kind(name, "queries", dict(queries or {}), Query)
        _check_kind(name, "events", dict.fromkeys(events), Event)
        self.name = name
        self.contract = contract if isinstance(contract, ModuleType) else None
        self.package = package or (self.contract.__name__.rpartition(".")[0] if self.contract is not None else None)
        self.commands: dict[type[Command], Handler] = dict(commands or {})
        self.queries: dict[type[Query], Handler] = dict(queries or {})
        self.projections = list(projections)
        self.process_managers = list(process_managers)
        self.views = list(views)
        self.depends_on = tuple(depends_on)
        self.upcasters = list(upcasters)
        self.migrations = list(migrations)
        self.owners: dict[type[Message], Any] = dict(owners or {})
        self.public: frozenset[type[Message]] = frozenset(_contract_messages(contract))
        self.events: list[type[Event]] = list(
            dict.fromkeys([*events, *(m for m in self.public if issubclass(m, Event))])
        )
        for message in self.public:
            if issubclass(message, Command) and message not in self.commands:
                raise ConfigurationError(f"module {name}: contract command {message.__name__} has no handler")
            if issubclass(message, Query) and message not in self.queries:
                raise ConfigurationError(f"module {name}: contract query {message.__name__} has no handler")

    def message_name(self, message_type: type[Message]) -> str:
        """Return the stable name of one of this module's message types (default ``<module>.<Class>``)."""
        declared = message_type.__message_name__
        return declared if declared is not None else f"{self.name}.{message_type.__name__}"

    def is_public(self, message_type: type[Message]) -> bool:
        """Return whether a message type is part of this module's contract."""
        return message_type in self.public

    def is_exposed(self, message_type: type[Message]) -> bool:
        """Return whether clients may send a message type over HTTP (public, and not ``expose=False``)."""
        return message_type in self.public and message_type.__message_exposed__

    def __repr__(self) -> str:
        return f"Module({self.name!r})"


_KINDS: dict[type[Message], str] = {Command: "commands", Query: "queries", Event: "events"}


def _check_kind(module: str, parameter: str, listed: Mapping[Any, Any], kind: type[Message]) -> None:
    """Raise ``HandlerMismatch`` for an entry of ``commands=``, ``queries=`` or ``events=`` of another kind."""
    for message_type, handler in listed.items():
        is_class = isinstance(message_type, type)
        if is_class and issubclass(message_type, kind):
            continue
        what = getattr(message_type, "__name__", repr(message_type))
        entry = what if handler is None else f"{{{what}: {getattr(handler, '__name__', handler)}}}"
        actual = next((k for k in _KINDS if is_class and issubclass(message_type, k)), None)
        if actual is None:
            is_a, fix = "not a message type", f"make {what} a subclass of citadel.{kind.__name__}"
        elif actual is Event:
            is_a, fix = "an Event", "list it in events= and react to it with a process manager or a projection"
        else:
            is_a, fix = f"a {actual.__name__}", f"list it in {_KINDS[actual]}= (with its handler) instead"
        raise HandlerMismatch(
            f"module {module}: {parameter}= lists {entry}, but {what} is {is_a}, not a {kind.__name__}; {fix}"
        )


def _contract_messages(contract: ModuleType | Sequence[type[Message]] | None) -> list[type[Message]]:
    if contract is None:
        return []
    if not isinstance(contract, ModuleType):
        return list(contract)
    return [
        value
        for value in vars(contract).values()
        if isinstance(value, type)
        and issubclass(value, (Command, Query, Event))
        and value.__module__ == contract.__name__
    ]


def dependency_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Return each distinct cycle in a module dependency graph, as the path ``[a, b, ..., a]``."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            if frozenset(cycle) not in seen:
                seen.add(frozenset(cycle))
                found.append(cycle)
            return
        state[name] = 1
        for target in sorted(edges.get(name, ())):
            if target in edges:
                visit(target, [*path, name])
        state[name] = 2

    for name in sorted(edges):
        visit(name, [])
    return found


def check_dependencies(modules: Mapping[str, Module]) -> None:
    """Refuse dependencies on modules that are not in the application, and cycles.

    Raises:
        ConfigurationError: a module depends on a missing one, or the dependencies form a cycle.
    """
    for module in modules.values():
        for dependency in module.depends_on:
            if dependency not in modules:
                raise ConfigurationError(
                    f"module {module.name!r} depends on {dependency!r}, which is not in the application"
                )
    for cycle in dependency_cycles({m.name: m.depends_on for m in modules.values()}):
        raise ConfigurationError(f"module dependencies form a cycle: {' -> '.join(cycle)}")
