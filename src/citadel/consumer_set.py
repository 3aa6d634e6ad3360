"""The consumers an ``Application`` runs in this process: an ``AsyncProjection`` for each async projection and a
``ProcessManagerConsumer`` for each process manager of its local modules, started and stopped together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from citadel.context import DispatchContext
from citadel.messages import Command
from citadel.messaging.consumer import Consumer
from citadel.messaging.process_manager import Dispatch, ProcessManagerConsumer
from citadel.module import Module
from citadel.projection_runner import AsyncProjection
from citadel.workers import worker_slot

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["ConsumerSet"]


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
        self._by_module: dict[str, list[Consumer]] = {}

    async def start(self) -> None:
        """Create a consumer for each async projection and process manager of the local modules; start them."""
        app = self._app
        store = app.store
        local = app.topology.local
        for binding in app.projections.values():
            if not binding.inline and binding.module in local:
                runner = self.projections[binding.name] = AsyncProjection(
                    binding, store, owner=app.node_id, lease_ttl=app.lease_ttl
                )
                self._by_module.setdefault(binding.module, []).append(runner)
        for module in app.modules.values():
            if module.name not in local:
                continue
            for consumer in self.process_managers_of(module):
                self.process_managers.append(consumer)
                self._by_module.setdefault(module.name, []).append(consumer)
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
        self._by_module.clear()

    def by_name(self) -> dict[str, Consumer]:
        """The running async projections and process managers by name."""
        return {**self.projections, **{m.name: m for m in self.process_managers}}

    def process_managers_of(self, module: Module) -> list[ProcessManagerConsumer]:
        """Return a new, unstarted consumer for each process manager of ``module``, on the open store."""
        app = self._app
        return [
            ProcessManagerConsumer(
                manager.name or f"{module.name}.process_manager",
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
        """Wait until every consumer of ``module`` has processed ``position``; False when ``timeout`` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for consumer in self._by_module.get(module, ()):
            if not await consumer.wait_for(position, max(0.0, deadline - loop.time())):
                return False
        return True

    async def wait_for_projection(self, name: str, position: int, timeout: float) -> bool:
        """Wait until projection ``name`` has processed ``position``; False on timeout."""
        runner = self.projections.get(name)
        if runner is None:
            return True  # inline projections are current with every commit
        return await runner.wait_for(position, timeout)
