"""Supervising the consumers one process runs for an application: an ``AsyncProjection`` for each async
projection and a ``ProcessManagerConsumer`` for each process manager of its local modules, started and stopped
together, shared out over the node's serving workers, and waited for by read-your-writes queries.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from citadel.context import DispatchContext
from citadel.messages import Command
from citadel.messaging.consumer import Consumer
from citadel.messaging.process_manager import Dispatch, ProcessManagerConsumer
from citadel.projection_runner import AsyncProjection
from citadel.reactions import consumers_leading_to, wait_for_chains

if TYPE_CHECKING:
    from citadel.composition import Composition
    from citadel.deployment import WorkerSlot
    from citadel.module import Module
    from citadel.store.base import EventStore

__all__ = ["ConsumerSet", "wait_for_all"]


async def wait_for_all(consumers: Sequence[Consumer], position: int, timeout: float) -> bool:
    """Wait until each of ``consumers`` has processed ``position``; False when ``timeout`` passes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for consumer in consumers:
        if not await consumer.wait_for(position, max(0.0, deadline - loop.time())):
            return False
    return True


class ConsumerSet:
    """The async projections and process managers of the ``local`` modules, on one open store.

    Empty until ``start()``; ``stop()`` stops them and empties it again. Process managers dispatch their
    commands through ``dispatch`` (the application's command bus), each as its module.
    """

    def __init__(
        self,
        composition: Composition,
        store: EventStore,
        *,
        local: Collection[str],
        dispatch: Callable[[Command, DispatchContext], Awaitable[Any]],
        node_id: str,
        lease_ttl: float,
    ) -> None:
        self._composition = composition
        self._store = store
        self._local = frozenset(local)
        self._dispatch = dispatch
        self._node_id = node_id
        self._lease_ttl = lease_ttl
        self.projections: dict[str, AsyncProjection] = {}
        """The running async projections by name."""
        self.process_managers: list[ProcessManagerConsumer] = []
        """The running process managers."""
        self._waited: dict[str, frozenset[str]] | None = None  # by module: what a query on it waits for
        self._homes: dict[str, str] = {}  # the module of each async projection and process manager, by name
        self._managers: set[str] = set()  # the names of the process managers

    async def start(self, worker: WorkerSlot | None = None) -> None:
        """Create a consumer for each async projection and process manager of the local modules; start them.

        In ``worker`` of several serving workers of a node, stand by for the consumers another worker comes
        first for, so that they spread over the workers (round robin, in the order every worker builds them)
        instead of all going to whichever started first.
        """
        for binding in self._composition.projections.values():
            if not binding.inline and binding.module in self._local:
                self.projections[binding.name] = AsyncProjection(
                    binding, self._store, owner=self._node_id, lease_ttl=self._lease_ttl
                )
        for module in self._composition.modules.values():
            if module.name in self._local:
                self.process_managers.extend(self.process_managers_of(module))
        consumers: list[Consumer] = [*self.projections.values(), *self.process_managers]
        for k, consumer in enumerate(consumers):
            if worker is not None and k % worker.count != worker.index:
                consumer.defer = self._lease_ttl
        for each in consumers:
            await each.start()

    async def stop(self) -> None:
        """Stop every consumer (each one even when another fails to stop) and forget them."""
        consumers = [*self.projections.values(), *self.process_managers]
        await asyncio.gather(*(c.stop() for c in consumers), return_exceptions=True)
        self.projections.clear()
        self.process_managers.clear()

    def by_name(self) -> dict[str, Consumer]:
        """The running async projections and process managers by name."""
        return {**self.projections, **{m.name: m for m in self.process_managers}}

    def following(self, names: Iterable[str], also: Mapping[str, Consumer] | None = None) -> list[Consumer]:
        """The consumers ``names`` of this service: those running here (or in ``also``), else watchers of their
        stored checkpoints (another process of the service runs them)."""
        running = {**self.by_name(), **(also or {})}
        return [running.get(name) or Consumer(name, self._store, owner=self._node_id) for name in names]

    def process_managers_of(self, module: Module) -> list[ProcessManagerConsumer]:
        """Return a new, unstarted consumer for each process manager of ``module``, on the open store."""
        return [
            ProcessManagerConsumer(
                manager.consumer_name(module.name),
                self._store,
                manager.reactions(self._composition.registry),
                self._dispatch_as(module),
                owner=self._node_id,
                lease_ttl=self._lease_ttl,
            )
            for manager in module.process_managers
        ]

    def _dispatch_as(self, module: Module) -> Dispatch:
        composition, dispatch = self._composition, self._dispatch

        async def dispatch_as(command: Command, context: DispatchContext) -> Any:
            composition.check_access(module, type(command), what=f"a process manager of {module.name}")
            return await dispatch(command, context)

        return dispatch_as

    async def wait_for_module(self, module: str, position: int, timeout: float) -> bool:
        """Wait until the consumers a query on ``module`` depends on have processed ``position`` and the reaction
        chains that start at or before it (``citadel.reactions``); False when ``timeout`` passes first.

        They are its async projections and the process managers that can lead to it, of this service's modules:
        those running here, else (another process runs them) their stored checkpoints."""
        composition = self._composition
        if self._waited is None:
            self._waited = consumers_leading_to(composition)
            self._homes = {b.name: b.module for b in composition.projections.values()}
            for m in composition.modules.values():
                self._homes.update((manager.consumer_name(m.name), m.name) for manager in m.process_managers)
            self._managers = set(self._homes) - set(composition.projections)
        # The others' consumers run in other services, on their own logs.
        names = sorted(n for n in self._waited.get(module, ()) if self._homes.get(n) in self._local)
        consumers = self.following(names)
        if not any(name in self._managers for name in names):
            return await wait_for_all(consumers, position, timeout)  # no process manager leads here: no reaction
        return await wait_for_chains(self._store, functools.partial(wait_for_all, consumers), position, timeout)

    async def wait_for_projection(self, name: str, position: int, timeout: float) -> bool:
        """Wait until projection ``name`` has processed ``position``; False on timeout."""
        runner = self.projections.get(name)
        if runner is None:
            return True  # inline projections are current with every commit
        return await runner.wait_for(position, timeout)
