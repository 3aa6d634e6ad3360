"""Operating an application's projections: how far each one (and each process manager) has got, and finding one
by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from citadel.errors import ConfigurationError
from citadel.module import Module
from citadel.projection import BoundProjection
from citadel.projection_runner import AsyncProjection
from citadel.store.base import EventStore

__all__ = ["PROCESS_MANAGER", "ProjectionStatus", "find_projection", "projection_statuses", "stored_statuses"]

PROCESS_MANAGER = "process manager"
"""The mode of a process manager's row in ``stored_statuses``."""


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


async def projection_statuses(
    projections: Mapping[str, BoundProjection], runners: Mapping[str, AsyncProjection], store: EventStore
) -> list[ProjectionStatus]:
    """Return each projection's position and lag; a projection without a runner is inline and never lags."""
    head = await store.head_position()
    statuses = []
    for name, binding in projections.items():
        runner = runners.get(name)
        if runner is None:
            statuses.append(ProjectionStatus(name, binding.module, "inline", head, 0, True, None))
        else:
            lag = max(0, head - runner.position)
            statuses.append(
                ProjectionStatus(name, binding.module, "async", runner.position, lag, runner.running, runner.last_error)
            )
    return statuses


async def stored_statuses(
    projections: Mapping[str, BoundProjection], modules: Iterable[Module], store: EventStore
) -> list[ProjectionStatus]:
    """Return how far each projection and each process manager of ``modules`` has got, by its stored checkpoint:
    what a tool that runs none of them sees (``running`` False, ``error`` None). Inline projections never lag.
    """
    head = await store.head_position()
    statuses = []
    for name, binding in projections.items():
        position = head if binding.inline else (await store.checkpoint(name) or 0)
        mode = "inline" if binding.inline else "async"
        statuses.append(ProjectionStatus(name, binding.module, mode, position, max(0, head - position), False, None))
    for module in modules:
        for manager in module.process_managers:
            name = manager.consumer_name(module.name)
            position = await store.checkpoint(name) or 0
            statuses.append(
                ProjectionStatus(name, module.name, PROCESS_MANAGER, position, max(0, head - position), False, None)
            )
    return statuses


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
