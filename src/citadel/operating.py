"""Operating a running application: its dead letters, its consumers, and its projections' status and rebuilds.

``Operating`` is mixed into ``Application``: the work is done by ``citadel.dead_letters``,
``citadel.consumer_set`` and ``citadel.projection_admin``, given the application's parts; this class only
hands them over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from citadel.dead_letters import discard_dead_letter, retry_dead_letter
from citadel.errors import StoreError
from citadel.projection_admin import ProjectionStatus, find_projection, projection_statuses
from citadel.projection_runner import Progress, rebuild

if TYPE_CHECKING:
    from citadel.composition import Composition
    from citadel.consumer_set import ConsumerSet
    from citadel.messaging.consumer import Consumer
    from citadel.placement import Placement
    from citadel.projection import BoundProjection
    from citadel.store.base import DeadLetter, EventStore
    from citadel.topology import Topology

__all__ = ["Operating"]


class Operating:
    """The operator's side of an ``Application`` (see the module docstring)."""

    composition: Composition
    projections: dict[str, BoundProjection]
    node_id: str
    _consumers: ConsumerSet | None
    _topology: Topology | None
    _placement: Placement

    @property
    def store(self) -> EventStore:
        """The open event store (``Application.store``)."""
        raise NotImplementedError

    async def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        """The events consumers gave up on (parked after their retries), oldest first."""
        return await self.store.dead_letters(consumer)

    async def retry_dead_letter(self, letter_id: int) -> None:
        """Process a parked event again, as its consumer would, and remove it from the dead letters
        (``citadel.dead_letters``).

        Raises:
            NotFound: there is no such dead letter (already retried or discarded?).
            ConfigurationError: its consumer is not part of this application or this service.
            Whatever processing raises: the event stays parked, with the cause to fix.
        """
        if self._topology is None:
            raise StoreError("the application is not started; use `async with app:` or `await app.start()`")
        await retry_dead_letter(
            letter_id,
            store=self.store,
            composition=self.composition,
            placement=self._placement,
            consumers=self._supervisor(),
            retry_inbox=self._topology.retry_inbox,
        )

    async def discard_dead_letter(self, letter_id: int) -> DeadLetter:
        """Remove a parked event without processing it (its effect is given up); return what was removed.

        Raises:
            NotFound: there is no such dead letter.
        """
        return await discard_dead_letter(self.store, letter_id)

    def _supervisor(self) -> ConsumerSet:
        if self._consumers is None:
            raise StoreError("the application is not started; use `async with app:` or `await app.start()`")
        return self._consumers

    @property
    def consumers(self) -> dict[str, Consumer]:
        """The running consumers by name: async projections, process managers, and the outbox relay."""
        found = self._consumers.by_name() if self._consumers is not None else {}
        relay = self._topology.relay if self._topology is not None else None
        if relay is not None:
            found[relay.name] = relay
        return found

    async def projection_status(self) -> list[ProjectionStatus]:
        """Return each projection's position and lag (inline projections never lag)."""
        return await projection_statuses(self.projections, self._supervisor().projections, self.store)

    async def rebuild_projection(self, name: str, *, progress: Progress | None = None) -> int:
        """Empty a projection's views and replay the log into them; return the position reached.

        Raises:
            ConfigurationError: there is no projection of that name.
        """
        binding = find_projection(self.projections, name)
        runner = self._supervisor().projections.get(name)
        return await rebuild(binding, self.store, runner, progress=progress, owner=self.node_id)

    async def wait_for_module(self, module: str, position: int, timeout: float) -> bool:
        """Wait until the async projections of ``module``, and the process managers that can lead to it, have
        processed ``position`` and the reaction chains that start at or before it (``citadel.reactions``).

        Inline projections are current with every commit, so a module that no consumer changes never waits.
        Returns False when ``timeout`` passes first.
        """
        return await self._supervisor().wait_for_module(module, position, timeout)

    async def wait_for_projection(self, name: str, position: int, timeout: float) -> bool:
        """Wait until projection ``name`` has processed ``position``; False on timeout."""
        return await self._supervisor().wait_for_projection(name, position, timeout)
