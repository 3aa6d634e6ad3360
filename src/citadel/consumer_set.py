"""The consumers an ``Application`` runs in this process: an ``AsyncProjection`` for each async projection and a
``ProcessManagerConsumer`` for each process manager of its local modules, started and stopped together.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from citadel.context import DispatchContext
from citadel.messages import Command
from citadel.messaging.consumer import Consumer
from citadel.messaging.process_manager import Dispatch, ProcessManagerConsumer
from citadel.module import Module
from citadel.projection_runner import AsyncProjection
from citadel.reactions import consumers_leading_to, wait_for_chains
from citadel.workers import worker_slot

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["ConsumerSet", "following", "wait_for_all"]


def following(app: Application, names: Iterable[str]) -> list[Consumer]:
    """The consumers ``names`` of this service: those running here, else watchers of their stored checkpoints
    (another process of the service runs them)."""
    running = app.consumers
    return [running.get(name) or Consumer(name, app.store, owner=app.node_id) for name in names]


async def wait_for_all(consumers: Sequence[Consumer], position: int, timeout: float) -> bool:
    """Wait until each of ``consumers`` has processed ``position``; False when ``timeout`` passes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for consumer in consumers:
        if not await consumer.wait_for(position, max(0.0, deadline - loop.time())):
            return False
    return True


class ConsumerSet:
    """The async projections and process managers one application runs here, by projection and by module.

    Empty until ``start()``; ``stop()`` stops them and empties it again.
    """

    def __init__(self, app: Application) -> None:
        self._app = app
        self.projections: dict[str, AsyncProjection] = {}
        """The running async projections by name."""
        self.process_managers: list[ProcessManagerConsumer] = []
        """The running process managers."""
        self._waited: dict[str, frozenset[str]] | None = None  # by module: what a query on it waits for
        self._homes: dict[str, str] = {}  # the module of each async projection and process manager, by name
        self._managers: set[str] = set()  # the names of the process managers

    async def start(self) -> None:
        """Create a consumer for each async projection and process manager of the local modules; start them."""
        app = self._app
        store = app.store
        local = app.topology.local
        for binding in app.projections.values():
            if not binding.inline and binding.module in local:
                self.projections[binding.name] = AsyncProjection(
                    binding, store, owner=app.node_id, lease_ttl=app.lease_ttl
                )
        for module in app.modules.values():
            if module.name not in local:
                continue
            self.process_managers.extend(self.process_managers_of(module))
        consumers: list[Consumer] = [*self.projections.values(), *self.process_managers]
        self._spread(consumers)
        for each in consumers:
            await each.start()

    def _spread(self, consumers: Sequence[Consumer]) -> None:
        """In one of several workers of a node, stand by for the consumers another worker comes first for, so
        the consumers spread over the workers (round robin, in the order every worker builds them) instead
        of all going to whichever started first."""
        slot = worker_slot()
        if slot is None:
            return
        index, count = slot
        for k, consumer in enumerate(consumers):
            if k % count != index:
                consumer.defer = self._app.lease_ttl

    async def stop(self) -> None:
        """Stop every consumer (each one even when another fails to stop) and forget them."""
        consumers = [*self.projections.values(), *self.process_managers]
        await asyncio.gather(*(c.stop() for c in consumers), return_exceptions=True)
        self.projections.clear()
        self.process_managers.clear()

    def by_name(self) -> dict[str, Consumer]:
        """The running async projections and process managers by name."""
        return {**self.projections, **{m.name: m for m in self.process_managers}}

    def process_managers_of(self, module: Module) -> list[ProcessManagerConsumer]:
        """Return a new, unstarted consumer for each process manager of ``module``, on the open store."""
        app = self._app
        return [
            ProcessManagerConsumer(
                manager.consumer_name(module.name),
                app.store,
                manager.reactions(app.registry),
                self._dispatch_as(module),
                owner=app.node_id,
                lease_ttl=app.lease_ttl,
            )
            for manager in module.process_managers
        ]

    def _dispatch_as(self, module: Module) -> Dispatch:
        app = self._app

        async def dispatch(command: Command, context: DispatchContext) -> Any:
            app.check_access(module, type(command), what=f"a process manager of {module.name}")
            return await app.commands.dispatch(command, context)

        return dispatch

    async def wait_for_module(self, module: str, position: int, timeout: float) -> bool:
        """Wait until the consumers a query on ``module`` depends on have processed ``position`` and the reaction
        chains that start at or before it (``citadel.reactions``); False when ``timeout`` passes first.

        They are its async projections and the process managers that can lead to it, of this service's modules:
        those running here, else (another process runs them) their stored checkpoints."""
        app = self._app
        if self._waited is None:
            self._waited = consumers_leading_to(app)
            self._homes = {b.name: b.module for b in app.projections.values()}
            for m in app.modules.values():
                self._homes.update((manager.consumer_name(m.name), m.name) for manager in m.process_managers)
            self._managers = set(self._homes) - set(app.projections)
        local = app.topology.local  # the others' consumers run in other services, on their own logs
        names = sorted(n for n in self._waited.get(module, ()) if self._homes.get(n) in local)
        consumers = following(app, names)
        if not any(name in self._managers for name in names):
            return await wait_for_all(consumers, position, timeout)  # no process manager leads here: no reaction
        return await wait_for_chains(app.store, functools.partial(wait_for_all, consumers), position, timeout)

    async def wait_for_projection(self, name: str, position: int, timeout: float) -> bool:
        """Wait until projection ``name`` has processed ``position``; False on timeout."""
        runner = self.projections.get(name)
        if runner is None:
            return True  # inline projections are current with every commit
        return await runner.wait_for(position, timeout)
