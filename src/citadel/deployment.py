"""Where and how one process runs an application, as one immutable value given to ``Application.start()``.

    await app.start(Deployment(modules={"billing"}, broker=broker, worker=WorkerSlot(0, 2)))

The same application object runs unchanged in a single process (the default ``Deployment()``: every module
here, consumers too), in one of several forked workers of a node, or as one service among several. Nothing in
the library reads the environment to find this out: the command line and the settings build the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citadel.errors import ConfigurationError

if TYPE_CHECKING:
    from citadel.messaging.nats import NatsBroker
    from citadel.store.base import EventStore

__all__ = ["Deployment", "WorkerSlot"]


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """This process's place among the serving workers of one node: worker ``index`` of ``count``.

    The consumers of the node are shared out over its workers by it (round robin), instead of all going to
    whichever worker starts first.

    Raises:
        ConfigurationError: ``index`` is not in ``range(count)``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ConfigurationError(
                f"a worker slot is index/count with 0 <= index < count, got {self.index}/{self.count}"
            )

    @classmethod
    def parse(cls, text: str) -> WorkerSlot | None:
        """``"1/2"`` → ``WorkerSlot(1, 2)``; None for anything else (no slot)."""
        index, _, count = text.partition("/")
        if not (index.isdigit() and count.isdigit()) or not int(index) < int(count):
            return None
        return cls(int(index), int(count))


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    """How this process runs the application.

    Args:
        store: the store URL or store to open; None: the one given to the ``Application``.
        modules: the names of the modules that run here; None (or empty): all of them.
        broker: how to reach the services that run the other modules (a ``NatsBroker`` with its service keys;
            a bare URL makes a broker without keys, which refuses to connect). Needed with ``modules``.
        consumers: whether this process runs the async projections, process managers and, in a partial
            deployment, the broker link (False in tools that only read or rebuild, and in serving processes
            that leave them to ``citadel consume``).
        worker: this process's slot among the node's serving workers; None outside such a worker.
    """

    store: str | EventStore | None = None
    modules: frozenset[str] | None = None
    broker: str | NatsBroker | None = None
    consumers: bool = True
    worker: WorkerSlot | None = None

    def __post_init__(self) -> None:
        modules: Collection[str] | None = self.modules
        if modules is not None and not isinstance(modules, frozenset):
            object.__setattr__(self, "modules", frozenset(modules))
        if not self.modules:
            object.__setattr__(self, "modules", None)

    def replace(self, **changes: Any) -> Deployment:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)
