"""What handlers receive, and the unit of work that turns a command into one atomic commit.

A command handler gets a ``CommandContext``: it loads state, decides, and *stages* appends; after the handler
returns, the framework commits every staged append, the command's idempotency record (with the handler's
result) and any due snapshot in one transaction. If a stream moved on meanwhile, the handler runs again on
fresh state (a few times) before ``ConcurrencyError`` reaches the caller.

A query handler gets a ``QueryContext``: read access to its own module's views, and the public queries of
the modules it depends on.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar

import msgspec

from citadel.context import SYSTEM, Actor, DispatchContext
from citadel.domain import Decider
from citadel.errors import AccessDenied, ViewInCommandHandler
from citadel.ids import new_id
from citadel.messages import Command, Event, Query, encode_json
from citadel.store.base import Snapshot, StreamAppend

if TYPE_CHECKING:
    from citadel.module import Module
    from citadel.store.base import EventStore
    from citadel.views import View, ViewReader

__all__ = ["CommandContext", "Loaded", "QueryContext", "Receipt", "current_receipt", "view_in_command_message"]

S = TypeVar("S")
D = TypeVar("D")
E = TypeVar("E", bound=Event)


class Runtime(Protocol):
    """What contexts need from the running application."""

    @property
    def store(self) -> EventStore:
        """The open event store."""

    def view_of(self, module: str, view: View[D]) -> View[D]:
        """This application's copy of ``view``, which ``module`` owns.

        Raises:
            AccessDenied: ``module`` does not own the view.
        """

    def forgotten_events(self, subject: str, module: str) -> list[Event]:
        """The events that record in this log that ``module`` forgot ``subject``."""

    async def query_from(self, module: Module, query: Query, context: DispatchContext) -> Any:
        """Run a query on behalf of ``module``, checking that it may ask it."""


@dataclass(slots=True)
class Receipt:
    """Filled in by a command's dispatch: the global position of its last event (0 if it wrote none)."""

    position: int = 0
    replayed: bool = False
    module: str = ""
    """The module whose service wrote it, when that is another service (a forwarded command)."""


current_receipt: contextvars.ContextVar[Receipt | None] = contextvars.ContextVar("citadel_receipt", default=None)


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """A stream's state as folded from its events, and the version it was folded at."""

    state: S
    version: int


def view_in_command_message(who: str, view: str) -> str:
    """The message of ``ViewInCommandHandler``: ``who`` read ``view``, and what to do instead."""
    return (
        f"{who} reads view {view}: command handlers decide from their stream's state (ctx.load or ctx.execute "
        "with a decider); read views in a query handler, or ask a query with ctx.query(...)"
    )


class _Context:
    __slots__ = ("_runtime", "context", "module")

    def __init__(self, runtime: Runtime, module: Module, context: DispatchContext) -> None:
        self._runtime = runtime
        self.module = module
        self.context = context

    @property
    def actor(self) -> Actor:
        """Who dispatched the message."""
        return self.context.actor

    async def query(self, query: Query) -> Any:
        """Ask a query of this module or of a module it depends on (public queries only).

        Raises:
            AccessDenied: the query belongs to a module this one did not declare in ``depends_on``, or is not
                in that module's contract.
        """
        # A module asks another module as itself (the system), not as the end user: the user's permission was
        # checked when their own message entered the bus.
        return await self._runtime.query_from(self.module, query, self.context.child().replace(actor=SYSTEM))


_shared_reads: contextvars.ContextVar[dict[tuple[int, str], Any] | None] = contextvars.ContextVar(
    "citadel_shared_reads", default=None
)


class reads_shared:
    """Within the block, view documents read by key are read once: a query's owner check and its handler, which
    usually read the same row, share it (one read instead of two, and both decide on the same version of it).
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _shared_reads.set({})

    def __exit__(self, *exc_info: object) -> None:
        _shared_reads.reset(self._token)


class _SharedReader(Generic[D]):
    """A view reader whose ``get`` answers from the documents already read in the same ``reads_shared`` block."""

    __slots__ = ("_reader", "_reads", "_view")

    def __init__(self, reader: ViewReader[D], reads: dict[tuple[int, str], Any], view: int) -> None:
        self._reader = reader
        self._reads = reads
        self._view = view

    async def get(self, key: str) -> D | None:
        slot = (self._view, key)
        if slot not in self._reads:
            self._reads[slot] = await self._reader.get(key)
        found: D | None = self._reads[slot]
        return found

    async def find(self, *, limit: int = 100, **where: Any) -> list[D]:
        return await self._reader.find(limit=limit, **where)

    async def count(self, **where: Any) -> int:
        return await self._reader.count(**where)


class QueryContext(_Context):
    """What a query handler receives: its module's views and the queries of its dependencies."""

    __slots__ = ()

    def view(self, view: View[D]) -> ViewReader[D]:
        """Return read access to one of this module's views.

        Raises:
            AccessDenied: the view belongs to another module.
        """
        bound = self._runtime.view_of(self.module.name, view)
        reader: ViewReader[D] = self._runtime.store.view_reader(bound)
        reads = _shared_reads.get()
        return reader if reads is None else _SharedReader(reader, reads, id(bound))


class CommandContext(_Context):
    """What a command handler receives: load state, stage appends; the framework commits afterwards."""

    __slots__ = ("_presume_new", "forgotten", "presumed", "snapshots", "staged")

    def __init__(self, runtime: Runtime, module: Module, context: DispatchContext, *, presume_new: bool = True) -> None:
        # _Context's fields set here rather than through super().__init__: one call less per command.
        self._runtime = runtime
        self.module = module
        self.context = context
        self.staged: list[StreamAppend] = []
        self.snapshots: list[Snapshot] = []
        self.forgotten: list[str] = []
        self._presume_new = presume_new
        self.presumed = False
        """Whether a stream loaded with ``new=True`` was presumed new without reading it."""

    def view(self, view: View[Any]) -> NoReturn:
        """Refuse to read a view: a command decides from its stream's state, which views only trail.

        Raises:
            ViewInCommandHandler: always.
        """
        try:
            shown = self._runtime.view_of(self.module.name, view).qualified_name
        except AccessDenied:  # another module's view: refused all the same, for the same reason
            shown = view.qualified_name if view.module else view.name
        raise ViewInCommandHandler(view_in_command_message(f"a command handler of module {self.module.name}", shown))

    @staticmethod
    def new_id() -> str:
        """Return a new unique, time-ordered id (for new entities)."""
        return new_id()

    async def load(self, decider: Decider[Any, S, Any], stream_id: str, *, new: bool = False) -> Loaded[S]:
        """Fold a stream into the decider's state, starting from its snapshot when one is usable.

        With ``new`` (the stream's id was just made, or is one a stream rarely has yet), the stream is presumed
        not to exist: the decider's initial state at version 0, without a read. Appending at that version
        commits only if the stream is still empty; if it is not, the framework runs the command again and
        this time reads it.
        """
        if new and self._presume_new:
            self.presumed = True
            return Loaded(decider.fold(()), 0)
        store = self._runtime.store
        state: S | None = None
        version = 0
        if decider.snapshot_every is not None and decider.state_type is not None:
            snapshot = await store.load_snapshot(stream_id)
            if snapshot is not None and snapshot.state_version == decider.state_version:
                try:
                    state = msgspec.json.decode(snapshot.data, type=decider.state_type)
                    version = snapshot.version
                except (msgspec.ValidationError, msgspec.DecodeError):
                    state = None  # an unusable snapshot is ignored: the events are the truth
        records = await store.read_stream(stream_id, version + 1)
        state = decider.fold((r.event for r in records if not r.forgotten), state)  # forgotten: as if never
        if records:
            version = records[-1].version
        return Loaded(state, version)

    def forget(self, subject: str) -> None:
        """Delete the data key of ``subject`` when the command commits: every event sealed with it becomes
        unreadable for good (crypto-shredding). Needs encryption at rest. The commit also appends
        ``SubjectForgotten`` (and the local modules' subclasses of it), which projections here handle and the
        outbox relay announces to the services that imported the subject's events."""
        self.forgotten.append(subject)
        events = self._runtime.forgotten_events(subject, self.module.name)
        self.staged.append(StreamAppend(f"citadel.forgotten.{self.module.name}", events))

    def append(self, stream_id: str, events: list[Event], expected_version: int | None = None) -> None:
        """Stage events for ``stream_id``; they are written when the handler returns, atomically."""
        self.staged.append(StreamAppend(stream_id, events, expected_version))

    async def execute(
        self, decider: Decider[Any, Any, E], stream_id: str, command: Command, *, new: bool = False
    ) -> list[E]:
        """Load the stream, decide on ``command``, stage the events at the loaded version; return them.
        ``new``: the stream is presumed not to exist yet (see ``load``).

        Raises:
            DomainError: the decider refused the command.
        """
        loaded = await self.load(decider, stream_id, new=new)
        events = list(decider.decide(command, loaded.state))
        if not events:
            return events
        self.staged.append(StreamAppend(stream_id, events, loaded.version))
        every = decider.snapshot_every
        new_version = loaded.version + len(events)
        if every is not None and new_version // every > loaded.version // every:
            state = decider.fold(events, loaded.state)
            self.snapshots.append(Snapshot(stream_id, new_version, decider.state_version, encode_json(state)))
        return events
