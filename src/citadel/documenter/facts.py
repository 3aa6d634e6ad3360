"""What the documenter reads of an application beyond its modules' declared fields: how its projections,
views and process managers are bound.

``read_bindings`` is the one function that reads those, so that a change to how an application binds its read
models or reactions is adjusted here alone. Everything else the documenter uses is a ``Module``'s declared fields
(``commands``, ``queries``, ``events``, ``depends_on``, ``package``, its contract) and ``Application.owner_of``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citadel.messages import Event

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["Bindings", "ProjectionFacts", "ReactionFacts", "ViewFacts", "read_bindings"]


@dataclass(frozen=True)
class ProjectionFacts:
    """A projection as bound in its module: its name, mode, class, the events it reads and the views it writes."""

    module: str
    name: str
    inline: bool
    projector: type
    events: tuple[type[Event], ...]
    views: tuple[str, ...]


@dataclass(frozen=True)
class ReactionFacts:
    """One reaction of a process manager: the event it reacts to and the function that reacts."""

    module: str
    manager: str
    event: type[Event]
    reaction: Callable[..., Any]


@dataclass(frozen=True)
class ViewFacts:
    """A view of a module: its qualified name, document type, indexed and unique fields."""

    module: str
    name: str
    doc_type: Any
    indexes: tuple[str, ...]
    unique: tuple[str, ...]


@dataclass(frozen=True)
class Bindings:
    """Every projection, process-manager reaction and view of an application."""

    projections: tuple[ProjectionFacts, ...]
    reactions: tuple[ReactionFacts, ...]
    views: tuple[ViewFacts, ...]


def read_bindings(app: Application) -> Bindings:
    """Return how ``app`` bound its projections, process managers and views (read, never changed)."""
    projections = tuple(
        ProjectionFacts(
            module=binding.module,
            name=binding.name,
            inline=binding.inline,
            projector=type(binding.projector),
            events=tuple(app.registry.named(name).cls for name in binding.event_types),
            views=tuple(view.qualified_name for view in binding.views),
        )
        for binding in app.projections.values()
    )
    reactions = tuple(
        ReactionFacts(module.name, manager.consumer_name(module.name), event_type, reaction)
        for module in app.modules.values()
        for manager in module.process_managers
        for event_type, reaction in manager.registered
    )
    views = tuple(
        ViewFacts(view.module or "", view.qualified_name, view.doc_type, view.indexes, view.unique)
        for view in app.views
    )
    return Bindings(projections, reactions, views)
