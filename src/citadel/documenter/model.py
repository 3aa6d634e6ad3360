"""The documentation model of an application: its modules, their messages, read models and reactions, and the
messages that flow between modules.

``document(app)`` builds it from the modules' declared fields, their contracts, the application's bindings
(``citadel.documenter.facts``) and the handlers' sources (``citadel.documenter.sends``). Everything in it is
sorted, so the pages written from it are the same on every run and diff cleanly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from citadel.documenter.facts import Bindings, ReactionFacts, read_bindings
from citadel.documenter.sends import constructed
from citadel.documenter.text import summary_of, type_name
from citadel.errors import ConfigurationError
from citadel.messages import Command, Event, Message, Query
from citadel.reactions import commands_returned

if TYPE_CHECKING:
    from citadel.app import Application
    from citadel.module import Module

__all__ = [
    "AppDoc",
    "Field",
    "Flow",
    "MessageDoc",
    "ModuleDoc",
    "ProcessManagerDoc",
    "ProjectionDoc",
    "ReactionDoc",
    "ViewDoc",
    "document",
]


@dataclass(frozen=True)
class Field:
    """A message field: its name, its type as written, and its default (None when it is required)."""

    name: str
    type: str
    default: str | None


@dataclass(frozen=True)
class MessageDoc:
    """A command, query or event of a module: stable name, class name, who may use it, summary and fields."""

    kind: str
    name: str
    cls: str
    module: str
    access: str
    summary: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Flow:
    """A message going from one module to another (or to itself): a command or query sent, or an event read."""

    kind: str
    sender: str
    receiver: str
    message: str
    cls: str
    by: str
    by_name: str

    @property
    def via(self) -> str:
        """Who sends or reads it, as Markdown: ``process manager `billing.invoicing```."""
        return f"{self.by} `{self.by_name}`"


@dataclass(frozen=True)
class ReactionDoc:
    """A process manager's reaction: the event, the function, and the commands it returns (None: not known)."""

    event: str
    function: str
    commands: tuple[str, ...] | None


@dataclass(frozen=True)
class ProcessManagerDoc:
    """A process manager of a module and its reactions, in event order."""

    name: str
    reactions: tuple[ReactionDoc, ...]


@dataclass(frozen=True)
class ProjectionDoc:
    """A projection: name, inline or async, summary, the events it reads and the views it writes."""

    name: str
    inline: bool
    summary: str
    events: tuple[str, ...]
    views: tuple[str, ...]


@dataclass(frozen=True)
class ViewDoc:
    """A view a module owns: qualified name, document type, indexed and unique fields."""

    name: str
    doc_type: str
    indexes: tuple[str, ...]
    unique: tuple[str, ...]


@dataclass(frozen=True)
class ModuleDoc:
    """Everything a module's canvas shows."""

    name: str
    package: str
    summary: str
    depends_on: tuple[str, ...]
    used_by: tuple[str, ...]
    commands: tuple[MessageDoc, ...]
    queries: tuple[MessageDoc, ...]
    events: tuple[MessageDoc, ...]
    projections: tuple[ProjectionDoc, ...]
    process_managers: tuple[ProcessManagerDoc, ...]
    views: tuple[ViewDoc, ...]


@dataclass(frozen=True)
class AppDoc:
    """An application's modules, by name, and every flow of messages between them (or within one)."""

    modules: tuple[ModuleDoc, ...]
    flows: tuple[Flow, ...]

    def between(self) -> tuple[Flow, ...]:
        """The flows from one module to another (a module's messages to itself left out)."""
        return tuple(f for f in self.flows if f.sender != f.receiver)


def document(app: Application) -> AppDoc:
    """Return the documentation model of ``app`` (read only: nothing of the application changes)."""
    bindings = read_bindings(app)
    modules = tuple(_module_doc(app, module, bindings) for module in sorted(app.modules.values(), key=_name))
    found = {flow for flow in _flows(app, bindings) if flow is not None}
    flows = sorted(found, key=lambda f: (f.sender, f.receiver, f.kind, f.message, f.by, f.by_name))
    return AppDoc(modules, tuple(flows))


def _name(module: Module) -> str:
    return module.name


def _stable(app: Application, message_type: type[Message]) -> str:
    return app.owner_of(message_type).message_name(message_type)


def _module_doc(app: Application, module: Module, bindings: Bindings) -> ModuleDoc:
    package = sys.modules.get(module.package or "")
    projections = sorted((p for p in bindings.projections if p.module == module.name), key=lambda p: p.name)
    reactions = [r for r in bindings.reactions if r.module == module.name]
    return ModuleDoc(
        name=module.name,
        package=module.package or "",
        summary=summary_of(package) if package is not None else "",
        depends_on=tuple(sorted(module.depends_on)),
        used_by=tuple(sorted(m.name for m in app.modules.values() if module.name in m.depends_on)),
        commands=_messages(module, "command", module.commands),
        queries=_messages(module, "query", module.queries),
        events=_messages(module, "event", module.events),
        projections=tuple(
            ProjectionDoc(
                name=p.name,
                inline=p.inline,
                summary=_own_summary(p.projector),
                events=tuple(sorted(_stable(app, e) for e in p.events)),
                views=tuple(sorted(p.views)),
            )
            for p in projections
        ),
        process_managers=_managers(app, reactions),
        views=tuple(
            ViewDoc(v.name, type_name(v.doc_type), tuple(v.indexes), tuple(v.unique))
            for v in sorted(bindings.views, key=lambda v: v.name)
            if v.module == module.name
        ),
    )


def _own_summary(cls: type) -> str:
    """The summary of an application's class; none for the framework's own (a ``Projector`` used with ``on()``),
    whose docstring describes the framework, not the application."""
    return "" if cls.__module__.partition(".")[0] == "citadel" else summary_of(cls)


def _messages(module: Module, kind: str, types: Iterable[type[Message]]) -> tuple[MessageDoc, ...]:
    docs = [
        MessageDoc(
            kind=kind,
            name=module.message_name(t),
            cls=t.__name__,
            module=module.name,
            access=_access(module, t),
            summary=summary_of(t),
            fields=tuple(_field(f) for f in msgspec.structs.fields(t)),
        )
        for t in types
    ]
    return tuple(sorted(docs, key=lambda d: d.name))


def _access(module: Module, message_type: type[Message]) -> str:
    if not module.is_public(message_type):
        return "Internal: not in the contract, so other modules may not use it"
    if issubclass(message_type, Event) or module.is_exposed(message_type):
        return "In the contract"
    return "In the contract, not served over HTTP"


def _field(info: msgspec.structs.FieldInfo) -> Field:
    if info.required:
        default = None
    elif info.default is not msgspec.NODEFAULT:
        shown = repr(info.default)
        default = shown if " at 0x" not in shown else type(info.default).__name__  # never an address: it changes
    else:
        default = f"{getattr(info.default_factory, '__name__', 'a factory')}()"
    return Field(info.name, type_name(info.type), default)


def _commands_of(reaction: Callable[..., Any]) -> frozenset[type[Command]] | None:
    """The commands a reaction returns: by its return annotation, else those its body constructs (None when
    neither names any)."""
    named = commands_returned(reaction)
    if named is not None:
        return named
    found = constructed(reaction, Command)
    return found or None


def _managers(app: Application, reactions: list[ReactionFacts]) -> tuple[ProcessManagerDoc, ...]:
    by_manager: dict[str, list[ReactionDoc]] = {}
    for facts in reactions:
        commands = _commands_of(facts.reaction)
        by_manager.setdefault(facts.manager, []).append(
            ReactionDoc(
                event=_stable(app, facts.event),
                function=getattr(facts.reaction, "__name__", repr(facts.reaction)),
                commands=None if commands is None else tuple(sorted(_owned_names(app, commands))),
            )
        )
    return tuple(
        ProcessManagerDoc(name, tuple(sorted(found, key=lambda r: (r.event, r.function))))
        for name, found in sorted(by_manager.items())
    )


def _owned_names(app: Application, message_types: Iterable[type[Message]]) -> list[str]:
    names = []
    for message_type in message_types:
        try:
            names.append(_stable(app, message_type))
        except ConfigurationError:  # no module handles it: the wiring checks refuse that at start-up
            names.append(message_type.__name__)
    return names


def _flows(app: Application, bindings: Bindings) -> Iterable[Flow | None]:
    for projection in bindings.projections:
        for event in projection.events:
            via = ("projection", projection.name)
            yield _flow(app, "event", event, projection.module, via, sender_owns=True)
    for facts in bindings.reactions:
        via = ("process manager", facts.manager)
        yield _flow(app, "event", facts.event, facts.module, via, sender_owns=True)
        for command in _commands_of(facts.reaction) or ():
            yield _flow(app, "command", command, facts.module, via, sender_owns=False)
    for module in app.modules.values():
        handlers = {id(h): h for h in (*module.commands.values(), *module.queries.values(), *module.owners.values())}
        for handler in handlers.values():
            via = ("handler", getattr(handler, "__qualname__", repr(handler)))
            for message in constructed(handler, Message):
                kind = "query" if issubclass(message, Query) else "command" if issubclass(message, Command) else ""
                found = _flow(app, kind, message, module.name, via, sender_owns=False) if kind else None
                if found is not None and found.receiver != module.name:
                    yield found


def _flow(
    app: Application, kind: str, message: type[Message], module: str, via: tuple[str, str], *, sender_owns: bool
) -> Flow | None:
    """The flow of ``message`` to or from ``module``: from its owner when ``sender_owns`` (an event read), else to
    its owner (a command or query sent). None when no module owns it."""
    try:
        owner = app.owner_of(message)
    except ConfigurationError:
        return None
    sender, receiver = (owner.name, module) if sender_owns else (module, owner.name)
    return Flow(kind, sender, receiver, owner.message_name(message), message.__name__, *via)
