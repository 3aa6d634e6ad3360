"""Operating an application's projections: how far each one (and each process manager) has got, and finding one
by name.

Lag is a count of events (``EventStore.count_after``), never a difference of positions: PostgreSQL's positions
are not dense."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from citadel.errors import ConfigurationError
from citadel.module import Module
from citadel.projection import BoundProjection
from citadel.store.base import EventStore

if TYPE_CHECKING:
    from citadel.messaging.consumer import Consumer

__all__ = [
    "PROCESS_MANAGER",
    "ProjectionStatus",
    "consumer_status",
    "find_projection",
    "process_manager_statuses",
    "projection_statuses",
    "stored_statuses",
]

PROCESS_MANAGER = "process manager"
"""The mode of a process manager's row."""


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


async def consumer_status(
    name: str, module: str, mode: str, runner: Consumer | None, store: EventStore
) -> ProjectionStatus:
    """Return how far consumer ``name`` has got: as ``runner`` has it while it holds the lease here, else by its
    stored checkpoint (``running`` False without a runner here: another process runs it, or none does)."""
    position = runner.position if runner is not None and runner.active else (await store.checkpoint(name) or 0)
    lag = await store.count_after(position)
    if runner is None:
        return ProjectionStatus(name, module, mode, position, lag, False, None)
    return ProjectionStatus(name, module, mode, position, lag, runner.running, runner.last_error)


async def projection_statuses(
    projections: Mapping[str, BoundProjection],
    runners: Mapping[str, Consumer],
    store: EventStore,
    *,
    local: Collection[str] | None = None,
) -> list[ProjectionStatus]:
    """Return the position and lag of each projection of the ``local`` modules (None: of all): an async one's
    from its runner in ``runners``, or its stored checkpoint (``consumer_status``); inline ones never lag."""
    head = await store.head_position()
    statuses = []
    for name, binding in projections.items():
        if local is not None and binding.module not in local:
            continue
        if binding.inline:
            statuses.append(ProjectionStatus(name, binding.module, "inline", head, 0, True, None))
        else:
            statuses.append(await consumer_status(name, binding.module, "async", runners.get(name), store))
    return statuses


async def process_manager_statuses(
    modules: Iterable[Module],
    runners: Mapping[str, Consumer],
    store: EventStore,
    *,
    local: Collection[str] | None = None,
) -> list[ProjectionStatus]:
    """Return the position and lag of each process manager of the ``local`` modules (None: of all), as
    ``consumer_status`` tells them."""
    statuses = []
    for module in modules:
        if local is not None and module.name not in local:
            continue
        for manager in module.process_managers:
            name = manager.consumer_name(module.name)
            statuses.append(await consumer_status(name, module.name, PROCESS_MANAGER, runners.get(name), store))
    return statuses


async def stored_statuses(
    projections: Mapping[str, BoundProjection], modules: Iterable[Module], store: EventStore
) -> list[ProjectionStatus]:
    """Return how far each projection and each process manager of ``modules`` has got, by its stored checkpoint:
    what a tool that runs none of them sees. Inline projections never lag."""
    statuses = await projection_statuses(projections, {}, store)
    return statuses + await process_manager_statuses(modules, {}, store)


def find_projection(projections: Mapping[str, BoundProjection], name: str) -> BoundProjection:
    """Return the projection named ``name``.

    Raises:
        ConfigurationError: there is no projection of that name (the message lists those there are).
    """
    binding = projections.get(name)
    if binding is None:
        known = ", ".join(sorted(projections)) or "none"
        raise ConfigurationError(f"no projection named {name!r}; known: {known}")
    return binding
