"""Composing modules, checked when an ``Application`` is built (no I/O): which module owns each message type,
which modules may use it, in which order modules come, and each module's projections and views, bound to it
for this composition alone.

A ``Composition`` is what the rest of the application core reads about the modules: it never refers back to
the ``Application`` that holds it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from citadel.errors import AccessDenied, ConfigurationError
from citadel.messages import EventRegistry, Message, SubjectForgotten
from citadel.module import Module, check_dependencies
from citadel.ownership import MessageOwnership
from citadel.projection import BoundProjection
from citadel.views import View
from citadel.wiring import check_wiring

__all__ = ["Composition", "MessageOwnership", "bind_read_models", "in_dependency_order"]

D = TypeVar("D")


class Composition:
    """An application's modules, checked and wired together: the owner of each message type, the registry of
    stored event names, and the projections and views bound to their modules.

    Views are bound per composition (``View.bound``): the declarations stay as they were written, so the same
    modules can make up several applications in one process, each with its own views.

    Raises:
        ConfigurationError: the modules are wired inconsistently (the message says how to fix it).
        AccessDenied: a projection or process manager subscribes to an event its module may not use.
    """

    def __init__(self, modules: Sequence[Module]) -> None:
        self.modules: dict[str, Module] = {m.name: m for m in modules}
        if len(self.modules) != len(modules):
            raise ConfigurationError("two modules share a name; module names must be unique")
        check_dependencies(self.modules)
        self.registry = EventRegistry()
        self.ownership = MessageOwnership(self.modules, self.registry)
        self.registry.register(SubjectForgotten)  # the framework's own event: forgetting appends it to the log
        for event_type in (t for m in modules for t in m.events if issubclass(t, SubjectForgotten)):
            if event_type.__message_subject__ is not None:  # it is written as the subject's key is deleted
                raise ConfigurationError(f"{event_type.__name__} records a forgotten subject: it declares no subject=")
        self._views: dict[str, dict[View[Any], View[Any]]] = {}  # by module: declaration or copy -> copy
        self.projections, self.views = bind_read_models(self.modules, self.registry, self.ownership, self._bind)

    def _bind(self, module: str, view: View[Any]) -> View[Any]:
        """This composition's copy of ``view`` for ``module``, made once.

        Raises:
            ConfigurationError: another module of the composition owns the view.
        """
        declaration = view.declaration
        for other, table in self._views.items():
            if other != module and declaration in table:
                raise ConfigurationError(
                    f"view {view.name!r} belongs to module {other!r}; module {module!r} cannot own it too. "
                    "Read another module's data through its public queries."
                )
        table = self._views.setdefault(module, {})
        bound = table.get(declaration)
        if bound is None:
            bound = table[declaration] = declaration.bound(module)
            table[bound] = bound
        return bound

    def view_of(self, module: str, view: View[D]) -> View[D]:
        """Return this composition's copy of ``view`` (a declaration, or the copy itself) for ``module``.

        Raises:
            AccessDenied: ``module`` does not own the view.
        """
        bound = self._views.get(module, {}).get(view)
        if bound is None:
            owner = next((m for m, table in self._views.items() if view in table), None)
            shown = f"{owner}.{view.name}" if owner else view.name
            raise AccessDenied(
                f"module {module!r} may not access view {shown!r}; "
                + (f"ask module {owner!r} through its public queries instead" if owner else "no module declares it")
            )
        return bound

    def home_of(self, view: View[Any]) -> str:
        """The name of the module that owns ``view`` (a declaration, or a copy of this composition's).

        Raises:
            ConfigurationError: no module of the composition declares it.
        """
        for module, table in self._views.items():
            if view in table:
                return module
        raise ConfigurationError(f"view {view.name!r} is not part of any module of this application")

    def owner_of(self, message_type: type[Message]) -> Module:
        """Return the module a message type belongs to.

        Raises:
            ConfigurationError: no module declares it.
        """
        return self.ownership.owner_of(message_type)

    def check_access(self, module: Module, message_type: type[Message], *, what: str | None = None) -> None:
        """Raise ``AccessDenied`` unless ``module`` may use ``message_type`` (``MessageOwnership.check_access``)."""
        self.ownership.check_access(module, message_type, what=what)

    def dependency_order(self) -> list[Module]:
        """The modules, each after the modules it depends on."""
        return in_dependency_order(self.modules)


def bind_read_models(
    modules: Mapping[str, Module],
    registry: EventRegistry,
    ownership: MessageOwnership,
    bind: Callable[[str, View[Any]], View[Any]] | None = None,
) -> tuple[dict[str, BoundProjection], list[View[Any]]]:
    """Bind each module's views and projections to the module; return the projections by name, and every bound
    view once. ``bind(module, view)`` gives the bound copy of a view (default: a new copy each time).

    The events each projection and process manager subscribes to are checked against what its module may use,
    and then every handler against what it is registered for (``citadel.wiring``).

    Raises:
        ConfigurationError: two projections share a name, a view is owned by two modules, or a handler does not
            fit its registration (one of the subclasses ``citadel.wiring.check_wiring`` lists; ``UnmatchedHandler``
            for a projector method).
        AccessDenied: a projection or process manager subscribes to an event its module may not use.
    """
    if bind is None:
        bind = _copying
    projections: dict[str, BoundProjection] = {}
    views: list[View[Any]] = []
    for module in modules.values():
        views.extend(v for v in (bind(module.name, view) for view in module.views) if v not in views)
        for projector in module.projections:
            binding = BoundProjection(
                projector,
                module.name,
                registry,
                functools.partial(ownership.may_use, module),
                bind=functools.partial(bind, module.name),
            )
            if binding.name in projections:
                raise ConfigurationError(f"two projections are named {binding.name!r}")
            _check_subscriptions(registry, ownership, module, f"projection {binding.name}", binding.event_types)
            projections[binding.name] = binding
            views.extend(v for v in binding.views if v not in views)
        for manager in module.process_managers:
            _check_subscriptions(
                registry,
                ownership,
                module,
                f"process manager {manager.name}",
                [registry.of(t).name for t in manager.event_types],
            )
    check_wiring(modules, ownership)
    return projections, views


def _copying(module: str, view: View[Any]) -> View[Any]:
    return view.bound(module)


def _check_subscriptions(
    registry: EventRegistry, ownership: MessageOwnership, module: Module, what: str, event_names: Sequence[str]
) -> None:
    for name in event_names:
        event_type = registry.named(name).cls
        ownership.check_access(module, event_type, what=what)


def in_dependency_order(modules: Mapping[str, Module]) -> list[Module]:
    """The modules, each after the modules it depends on."""
    ordered: list[Module] = []

    def visit(module: Module) -> None:
        if module not in ordered:
            for name in module.depends_on:
                visit(modules[name])
            ordered.append(module)

    for module in modules.values():
        visit(module)
    return ordered
