"""The module map: each module's contract and declared dependencies, and the messages that cross between modules.

An event crosses from its module to every other module whose projection or process manager handles it. A command
crosses from a process manager's module to the module that owns it, when the reaction's return annotation names
it (reactions are plain functions: what they return unannotated is only known when they run).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citadel.errors import ConfigurationError, UnknownEventType
from citadel.messages import Command, Message

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["Crossing", "ModuleCard", "crossings", "mermaid", "module_cards"]


@dataclass(frozen=True, slots=True)
class ModuleCard:
    """What one module declares: its dependencies, public and internal messages, read models and reactions."""

    name: str
    depends_on: tuple[str, ...]
    commands: list[tuple[str, bool]]
    queries: list[tuple[str, bool]]
    events: list[tuple[str, bool]]
    projections: list[str]
    process_managers: list[str]
    runs_here: bool


@dataclass(frozen=True, slots=True, order=True)
class Crossing:
    """A message from module ``source`` to module ``target``: an ``event`` handled there, or a ``command`` sent."""

    source: str
    target: str
    kind: str
    message: str


def module_cards(application: Application) -> list[ModuleCard]:
    """One card per module, in dependency order; each message as (stable name, whether it is public)."""
    cards = []
    for module in application.dependency_order():

        def named(types: Any, module: Any = module) -> list[tuple[str, bool]]:
            return sorted((module.message_name(t), module.is_public(t)) for t in types)

        cards.append(
            ModuleCard(
                name=module.name,
                depends_on=module.depends_on,
                commands=named(module.commands),
                queries=named(module.queries),
                events=named(module.events),
                projections=sorted(b.name for b in application.projections.values() if b.module == module.name),
                process_managers=[m.consumer_name(module.name) for m in module.process_managers],
                runs_here=application.topology.runs(module.name),
            )
        )
    return cards


def crossings(application: Application) -> list[Crossing]:
    """Every message that crosses from one module to another, sorted."""
    found: set[Crossing] = set()
    registry = application.registry
    for binding in application.projections.values():
        for name in binding.event_types:
            source = _owner_of_event(application, name)
            if source is not None and source != binding.module:
                found.add(Crossing(source, binding.module, "event", name))
    for module in application.modules.values():
        for manager in module.process_managers:
            for event_type, reaction in manager.registered:
                source = application.owner_of(event_type).name
                if source != module.name:
                    found.add(Crossing(source, module.name, "event", registry.of(event_type).name))
                for command_type in _commands_returned(reaction):
                    try:
                        target = application.owner_of(command_type)
                    except ConfigurationError:
                        continue
                    if target.name != module.name:
                        found.add(Crossing(module.name, target.name, "command", target.message_name(command_type)))
    return sorted(found)


def mermaid(cards: list[ModuleCard], crossed: list[Crossing]) -> str:
    """The map as Mermaid flowchart source: dependencies as dotted arrows, messages as labelled ones."""
    lines = ["flowchart LR"]
    lines += [f"    {card.name}" for card in cards]
    lines += [f"    {card.name} -.->|depends on| {dependency}" for card in cards for dependency in card.depends_on]
    lines += [f"    {c.source} -->|{c.kind} {c.message}| {c.target}" for c in crossed]
    return "\n".join(lines)


def _owner_of_event(application: Application, name: str) -> str | None:
    try:
        return application.owner_of(application.registry.named(name).cls).name
    except (UnknownEventType, ConfigurationError):
        return None  # a framework event (a forgotten subject), which no module owns


def _commands_returned(reaction: Callable[..., Any]) -> list[type[Message]]:
    """The command classes a reaction's return annotation names (none when it has none, or it cannot be read)."""
    try:
        returned = typing.get_type_hints(reaction).get("return")
    except Exception:  # an annotation that does not resolve tells nothing: the map shows what is known
        return []
    found: list[type[Message]] = []
    pending = [returned]
    while pending:
        hint = pending.pop()
        if isinstance(hint, type) and issubclass(hint, Command):
            found.append(hint)
        else:
            pending.extend(typing.get_args(hint))
    return found
