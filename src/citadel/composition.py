"""Composing modules, checked when an ``Application`` is built (no I/O): which module owns each message type,
which modules may use it, in which order modules come, and each module's projections and views bound to it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from citadel.errors import AccessDenied, ConfigurationError
from citadel.messages import EventRegistry, Message
from citadel.module import Module
from citadel.projection import BoundProjection
from citadel.views import View
from citadel.wiring import check_wiring

__all__ = ["MessageOwnership", "bind_read_models", "in_dependency_order"]


class MessageOwnership:
    """Which module owns each message type, and which modules may use it.

    Built from the application's modules: records the module of each command, query and event type, and
    registers the events (under their stable names) and the modules' upcasters in ``registry``.

    Raises:
        ConfigurationError: two modules declare the same message type.
    """

    def __init__(self, modules: Mapping[str, Module], registry: EventRegistry) -> None:
        self._owner: dict[type[Message], Module] = {}
        for module in modules.values():
            for message_type in (*module.commands, *module.queries, *module.events):
                other = self._owner.get(message_type)
                if other is not None and other is not module:
                    raise ConfigurationError(
                        f"{message_type.__name__} is declared by modules {other.name!r} and {module.name!r}; "
                        "a message type belongs to one module (the other imports it from its contract)"
                    )
                self._owner[message_type] = module
            for event_type in module.events:
                registry.register(event_type, name=module.message_name(event_type))
        for module in modules.values():
            for upcaster in module.upcasters:
                registry.add_upcaster(upcaster)

    def __iter__(self) -> Iterator[type[Message]]:
        """Every declared message type, module by module."""
        return iter(self._owner)

    def owner_of(self, message_type: type[Message]) -> Module:
        """Return the module a message type belongs to.

        Raises:
            ConfigurationError: no module declares it.
        """
        try:
            return self._owner[message_type]
        except KeyError:
            raise ConfigurationError(f"{message_type.__name__} is not declared by any module") from None

    def permission_of(self, message_type: type[Message]) -> str:
        """The permission a message type needs: its ``permission=``, else its stable name."""
        declared = message_type.__message_permission__
        return declared if declared else self.owner_of(message_type).message_name(message_type)

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


def bind_read_models(
    modules: Mapping[str, Module], registry: EventRegistry, ownership: MessageOwnership
) -> tuple[dict[str, BoundProjection], list[View[Any]]]:
    """Bind each module's views and projections to the module; return the projections by name, and every view once.

    The events each projection and process manager subscribes to are checked against what its module may use,
    and then every handler against what it is registered for (``citadel.wiring``).

    Raises:
        ConfigurationError: two projections share a name, or a handler does not fit its registration (one of the
            subclasses ``citadel.wiring.check_wiring`` lists; ``UnmatchedHandler`` for a projector method).
        AccessDenied: a projection or process manager subscribes to an event its module may not use.
    """
    projections: dict[str, BoundProjection] = {}
    views: list[View[Any]] = []
    for module in modules.values():
        for view in module.views:
            view.bind(module.name)
        views.extend(module.views)
        for projector in module.projections:
            binding = BoundProjection(projector, module.name, registry, functools.partial(ownership.may_use, module))
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
