"""Operating an application's projections: how far each one has got, and finding one by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from citadel.errors import ConfigurationError
from citadel.projection import BoundProjection
from citadel.projection_runner import AsyncProjection
from citadel.store.base import EventStore

__all__ = ["ProjectionStatus", "find_projection", "projection_statuses"]


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
