"""Pure domain code: deciders, and aggregates as sugar on top of them.

A decider is three pure functions over a state type::

    initial_state                     the state of a stream with no events
    evolve(state, event) -> state     apply one past event
    decide(command, state) -> events  accept a command (return new events) or refuse it (raise DomainError)

Domain code does no I/O; the framework loads the events, folds them with ``evolve``, calls ``decide`` and
appends what it returns with optimistic concurrency.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar, Union, get_args, get_origin

import msgspec

from citadel.errors import ConfigurationError, MissingDecision, UnevolvedEvent
from citadel.messages import Command, Event

__all__ = ["Aggregate", "Decider", "annotated_classes", "decides", "evolves"]

C = TypeVar("C", bound=Command)
S = TypeVar("S")
E = TypeVar("E", bound=Event)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Decider(Generic[C, S, E]):
    """A pure decision model: ``initial_state``, ``evolve`` and ``decide``.

    ``state_type`` and ``state_version`` let the framework store snapshots of the state every
    ``snapshot_every`` events; bump ``state_version`` when the state's shape changes and old snapshots are
    ignored (the state is rebuilt from events).

    ``commands`` are the command types ``decide`` accepts, when known (an aggregate's ``@decides`` methods): the
    application then checks at build that its handlers execute only those on it.
    """

    commands: frozenset[type[Command]] | None = None

    def __init__(
        self,
        *,
        initial_state: S,
        evolve: Callable[[S, E], S],
        decide: Callable[[C, S], Sequence[E]],
        state_type: type[S] | None = None,
        state_version: int = 1,
        snapshot_every: int | None = None,
    ) -> None:
        if snapshot_every is not None and (snapshot_every < 1 or state_type is None):
            raise ConfigurationError("snapshot_every needs a positive interval and a state_type to decode")
        self._initial_state = initial_state
        self.evolve = evolve
        self.decide = decide
        self.state_type = state_type
        self.state_version = state_version
        self.snapshot_every = snapshot_every

    @property
    def initial_state(self) -> S:
        """The state of a stream that has no events."""
        return self._initial_state

    def fold(self, events: Iterable[E], state: S | None = None) -> S:
        """Return the state after applying ``events`` to ``state`` (default: the initial state)."""
        current = self.initial_state if state is None else state
        evolve = self.evolve
        for event in events:
            current = evolve(current, event)
        return current


def decides(method: F) -> F:
    """Mark an aggregate method as the decision for the command type its first parameter is annotated with."""
    method.__citadel_role__ = "decide"  # type: ignore[attr-defined]
    return method


def evolves(method: F) -> F:
    """Mark an aggregate method as the state change for the event type its first parameter is annotated with."""
    method.__citadel_role__ = "evolve"  # type: ignore[attr-defined]
    return method


class Aggregate(msgspec.Struct, kw_only=True):
    """Sugar for a decider whose state is a mutable struct with methods.

    Declare fields with defaults, ``@decides`` methods that take a command and return events (without
    changing ``self``), and ``@evolves`` methods that take an event and change ``self``::

        class Invoice(Aggregate):
            status: str = "none"

            @decides
            def pay(self, command: PayInvoice) -> list[Event]:
                if self.status != "open":
                    raise DomainError("invoice is not open")
                return [InvoicePaid(invoice_id=command.invoice_id)]

            @evolves
            def paid(self, event: InvoicePaid) -> None:
                self.status = "paid"

    ``Invoice.decider()`` returns the equivalent ``Decider``. It refuses an aggregate whose ``@decides`` methods
    are annotated to return an event type that no ``@evolves`` method applies, unless ``ignores=`` lists it.
    """

    __routes__: ClassVar[tuple[dict[type, Callable[..., Any]], dict[type, Callable[..., Any]]] | None] = None

    @classmethod
    def _resolve_routes(cls) -> tuple[dict[type, Callable[..., Any]], dict[type, Callable[..., Any]]]:
        routes = cls.__dict__.get("__routes__")
        if routes is not None:
            return routes  # type: ignore[no-any-return]
        deciders: dict[type, Callable[..., Any]] = {}
        evolvers: dict[type, Callable[..., Any]] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                role = getattr(attr, "__citadel_role__", None)
                if role is None:
                    continue
                target = _first_parameter_type(klass, attr)
                (deciders if role == "decide" else evolvers)[target] = attr
        routes = (deciders, evolvers)
        cls.__routes__ = routes
        return routes

    @classmethod
    def decider(
        cls,
        *,
        snapshot_every: int | None = None,
        state_version: int = 1,
        ignores: Collection[type[Event]] = (),
    ) -> Decider[Command, Self, Event]:
        """Return a ``Decider`` whose state is an instance of this aggregate.

        ``ignores`` lists the event types its ``@decides`` methods return that deliberately change no state.

        Raises:
            UnevolvedEvent: a ``@decides`` method's return annotation names an event type that no ``@evolves``
                method applies and ``ignores`` does not list.
        """
        deciders, evolvers = cls._resolve_routes()
        _check_evolved(cls, deciders, evolvers, frozenset(ignores))

        def decide(command: Command, state: Self) -> Sequence[Event]:
            method = deciders.get(type(command))
            if method is None:
                raise MissingDecision(cls, type(command))
            events = method(state, command)
            return list(events) if events is not None else []

        def evolve(state: Self, event: Event) -> Self:
            method = evolvers.get(type(event))
            if method is not None:
                method(state, event)
            return state

        return _AggregateDecider(
            cls,
            evolve=evolve,
            decide=decide,
            state_version=state_version,
            snapshot_every=snapshot_every,
        )


class _AggregateDecider(Decider[Command, Any, Event]):
    """A decider whose initial state is a fresh aggregate instance each time (aggregates are mutable)."""

    def __init__(self, cls: type[Aggregate], **kwargs: Any) -> None:
        super().__init__(initial_state=None, state_type=cls, **kwargs)
        self._cls = cls
        self.commands = frozenset(cls._resolve_routes()[0])

    @property
    def initial_state(self) -> Any:
        return self._cls()


def _first_parameter_type(owner: type, method: Callable[..., Any]) -> type:
    where = f"{owner.__qualname__}.{getattr(method, '__name__', method)}"
    try:
        hints = typing.get_type_hints(inspect.unwrap(method))
    except NameError as exc:
        raise ConfigurationError(f"{where}: cannot resolve annotation: {exc}") from exc
    params = list(inspect.signature(method).parameters)[1:]
    if not params or params[0] not in hints:
        raise ConfigurationError(f"{where} must annotate its first parameter with the command or event type it handles")
    target = hints[params[0]]
    if not isinstance(target, type):
        raise ConfigurationError(f"{where}: {target!r} is not a class")
    return target


def _check_evolved(
    cls: type,
    deciders: dict[type, Callable[..., Any]],
    evolvers: dict[type, Callable[..., Any]],
    ignores: frozenset[type],
) -> None:
    name = cls.__qualname__
    both = sorted(ignores & evolvers.keys(), key=lambda t: t.__name__)
    if both:
        raise ConfigurationError(
            f"{name}.decider(ignores=...) lists {both[0].__name__}, but {name}.{evolvers[both[0]].__name__} "
            "evolves on it; remove it from ignores"
        )
    problems: list[str] = []
    for method in dict.fromkeys(deciders.values()):
        for event_type in sorted(_emitted_events(method), key=lambda t: t.__name__):
            # A base class with subclasses may stand for any of them: which ones is not visible here.
            if event_type in evolvers or event_type in ignores or event_type.__subclasses__():
                continue
            event = event_type.__name__
            problems.append(
                f"{name}.{method.__name__} returns {event}, which no @evolves method applies; add "
                f"`@evolves def {_snake(event)}(self, event: {event}) -> None` to {name}, or build it with "
                f"{name}.decider(ignores=[{event}]) if {event} deliberately changes no state"
            )
    if problems:
        raise UnevolvedEvent("; ".join(problems))


def _emitted_events(method: Callable[..., Any]) -> set[type[Event]]:
    """The event classes a ``@decides`` method's return annotation names (none when it cannot be read)."""
    try:
        returns = typing.get_type_hints(inspect.unwrap(method)).get("return")
    except Exception:  # an annotation that does not resolve here: nothing to check
        return set()
    return annotated_classes(returns, Event)


def annotated_classes(hint: Any, base: type[T]) -> set[type[T]]:
    """Return the strict subclasses of ``base`` that a resolved annotation names, through unions, ``Optional``,
    ``Annotated`` and iterables (``list[A | B]``, ``Sequence[A]``, ``tuple[A, ...]``)."""
    found: set[type[T]] = set()
    pending = [hint]
    while pending:
        hint = pending.pop()
        origin = get_origin(hint)
        if origin in (Union, types.UnionType, Annotated):
            pending.extend(get_args(hint)[:1] if origin is Annotated else get_args(hint))
        elif isinstance(origin, type) and issubclass(origin, Iterable) and not issubclass(origin, (str, bytes)):
            pending.extend(a for a in get_args(hint) if a is not Ellipsis)
        elif isinstance(hint, type) and issubclass(hint, base) and hint is not base:
            found.add(hint)
    return found


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
