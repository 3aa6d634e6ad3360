"""Process managers: an event in one module becomes a command to another.

    open_invoices = ProcessManager("billing.open_invoices")

    @open_invoices.on(OrderCreated)
    def open_invoice(event: OrderCreated) -> OpenInvoice:
        return OpenInvoice(order_id=event.order_id, amount=event.total)

A reaction is pure: it maps an event to zero or more commands. The framework dispatches each command with
an idempotency key derived from the event's id and the command's index, so replaying the log or redelivering
the event never processes a command twice. Commands caused by events of one stream run in order; different
streams run concurrently.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from citadel.context import SYSTEM, DispatchContext
from citadel.errors import ConfigurationError
from citadel.messages import Command, Event, EventRegistry
from citadel.messaging.consumer import Consumer, RetryPolicy
from citadel.tracing import enabled, link_from, process_span

if TYPE_CHECKING:
    from citadel.store.base import EventStore, RecordedEvent

__all__ = ["ProcessManager", "ProcessManagerConsumer"]

F = TypeVar("F", bound=Callable[..., Any])
Dispatch = Callable[[Command, DispatchContext], Awaitable[Any]]


class ProcessManager:
    """Reactions from events to commands, declared with ``on()``; named for its checkpoint."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._reactions: list[tuple[type[Event], Callable[..., Any]]] = []

    def on(self, *event_types: type[Event]) -> Callable[[F], F]:
        """Decorator: ``fn(event)`` or ``fn(event, record)`` returning a command, commands, or None."""
        if not event_types:
            raise ConfigurationError("on() needs at least one event type")

        def register(reaction: F) -> F:
            for event_type in event_types:
                self._reactions.append((event_type, reaction))
            return reaction

        return register

    @property
    def event_types(self) -> list[type[Event]]:
        """The event types this process manager reacts to."""
        return [t for t, _ in self._reactions]

    @property
    def registered(self) -> list[tuple[type[Event], Callable[..., Any]]]:
        """Each event type with its reaction, in declaration order."""
        return list(self._reactions)

    @property
    def reaction_functions(self) -> list[Callable[..., Any]]:
        """The reactions as declared, each once, in declaration order."""
        return list(dict.fromkeys(r for _, r in self._reactions))

    def consumer_name(self, module: str) -> str:
        """The name of its consumer (and checkpoint) in ``module``: its own name, else ``<module>.process_manager``."""
        return self.name or f"{module}.process_manager"

    def reactions(self, registry: EventRegistry) -> dict[str, list[Callable[[RecordedEvent], list[Command]]]]:
        """Return, by stored event name, functions from a record to the commands to dispatch."""
        table: dict[str, list[Callable[[RecordedEvent], list[Command]]]] = {}
        for event_type, reaction in self._reactions:
            table.setdefault(registry.of(event_type).name, []).append(_normalise(reaction))
        return table


def _normalise(reaction: Callable[..., Any]) -> Callable[[RecordedEvent], list[Command]]:
    params = [
        p
        for p in inspect.signature(reaction).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) not in (1, 2) or inspect.iscoroutinefunction(reaction):
        raise ConfigurationError(
            f"reaction {reaction.__qualname__} must be a plain function of (event) or (event, record)"
        )
    with_record = len(params) == 2

    def react(record: RecordedEvent) -> list[Command]:
        out = reaction(record.event, record) if with_record else reaction(record.event)
        if out is None:
            return []
        if isinstance(out, Command):
            return [out]
        if isinstance(out, Iterable):
            commands = list(out)
            if all(isinstance(c, Command) for c in commands):
                return commands
        raise ConfigurationError(f"reaction {reaction.__qualname__} returned {out!r}, not commands")

    return react


class ProcessManagerConsumer(Consumer):
    """Runs a process manager: follows the log and dispatches the commands its reactions return.

    Up to ``concurrency`` streams of a page react at once (a stream's own events in order). Each reaction waits
    for its command's commit, so the consumer's rate is about ``concurrency`` per commit cycle: too few at once,
    and under the 10,000-user load (``bench/vu.py``) the shop's invoicing fell far behind in bursts; the figures
    are in ``docs/benchmarks/history.md``.
    """

    def __init__(
        self,
        name: str,
        store: EventStore,
        reactions: dict[str, list[Callable[[RecordedEvent], list[Command]]]],
        dispatch: Dispatch,
        *,
        owner: str,
        retry: RetryPolicy | None = None,
        concurrency: int = 256,
        lease_ttl: float = 5.0,
    ) -> None:
        super().__init__(name, store, owner=owner, retry=retry, lease_ttl=lease_ttl)
        self._reactions = reactions
        self._dispatch = dispatch
        self._concurrency = concurrency
        self.types = frozenset(reactions)

    async def process(self, records: Sequence[RecordedEvent], upto: int) -> None:
        by_stream: dict[str, list[RecordedEvent]] = {}
        for record in records:
            if record.type in self._reactions:
                by_stream.setdefault(record.stream_id, []).append(record)
        if not by_stream:
            return
        streams = iter(by_stream.values())

        async def run_streams() -> None:
            # One of ``concurrency`` runners sharing the page's streams: done with one, a runner starts the next
            # in the same step (a semaphore would wake the next waiter a turn of the loop later).
            for stream in streams:
                for record in stream:
                    await self.attempt(record, lambda record=record: self.react(record))  # type: ignore[misc]

        await asyncio.gather(*(run_streams() for _ in range(min(self._concurrency, len(by_stream)))))
        # The checkpoint is saved by the base class, every ``persist_interval``: after a crash the reactions
        # since then run again, and their idempotency keys answer them from the first time.

    async def react(self, record: RecordedEvent) -> None:
        """Dispatch the commands this process manager's reactions return for ``record``; while tracing, in a
        CONSUMER span linked to the command that wrote it, whose children the dispatched commands are."""
        if record.forgotten:  # nothing can be read of it: nothing to react to
            return
        if enabled():
            links = [link_from(record.traceparent)]
            with process_span(record.type, consumer=self.name, system="citadel", links=links):
                await self._react(record)
        else:
            await self._react(record)

    async def _react(self, record: RecordedEvent) -> None:
        index = 0
        for react in self._reactions[record.type]:
            for command in react(record):
                context = DispatchContext(
                    actor=SYSTEM,
                    correlation_id=record.correlation_id or record.event_id,
                    causation_id=record.event_id,
                    causation_position=record.position,
                    idempotency_key=f"{self.name}:{record.event_id}:{index}",
                )
                await self._dispatch(command, context)
                index += 1
