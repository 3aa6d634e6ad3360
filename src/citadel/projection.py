"""Projectors: pure folds from events to read models (views).

A handler takes the event and a ``ProjectionContext``: the stored record, and ``view()`` for the views the
projector writes. It writes only through that context, so what it writes is what it is given; the framework
runs it inside the store's transaction: *inline* projectors in the same transaction as the append
(read-your-writes), *async* ones in the same transaction as their checkpoint (exactly once in effect). Three
ways to route events to handlers, mixable::

    class OrderSummaries(Projector):               # the seed's naming: handle_<eventname>
        orders = View("orders")

        def handle_ordercreated(self, event: OrderCreated, ctx: ProjectionContext) -> None:
            ctx.view(self.orders)[event.order_id] = {"status": "created", "total": event.total}

        @handles(OrderPaid)                        # by event type, under any name
        def paid(self, event: OrderPaid, ctx: ProjectionContext) -> None:
            ctx.view(self.orders).merge(event.order_id, status="paid")

    revenue = Projector("analytics.revenue", views=[REVENUE], inline=False)

    @revenue.on(InvoicePaid)                       # functions, on an instance
    def paid(event: InvoicePaid, ctx: ProjectionContext) -> None:
        ctx.view(REVENUE).increment("total", "revenue", event.amount)

**The seed's one-argument form** (``def handle_ordercreated(self, event)`` writing ``self.orders[key] = doc``)
still runs. It is told apart by its signature: a method that takes the event alone. Such a method is called
on a copy of the projector made for the transaction, whose view attributes are that transaction's writers;
the projector object itself is never changed, so one projector may serve several applications at once.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from citadel.errors import AccessDenied, ConfigurationError, UnmatchedHandler
from citadel.messages import Event, EventRegistry
from citadel.views import View

if TYPE_CHECKING:
    from citadel.store.base import RecordedEvent, ViewTransaction
    from citadel.views import ViewWriter

__all__ = ["BoundProjection", "ProjectionContext", "Projector", "handles"]

F = TypeVar("F", bound=Callable[..., Any])
D = TypeVar("D")

_HANDLES = "__citadel_handles__"


def handles(*event_types: type[Event]) -> Callable[[F], F]:
    """Decorator for a ``Projector`` method: route ``event_types`` to it, whatever its name.

    Raises:
        ConfigurationError: no event type is given.
    """
    if not event_types:
        raise ConfigurationError("handles() needs at least one event type")

    def mark(method: F) -> F:
        setattr(method, _HANDLES, (*getattr(method, _HANDLES, ()), *event_types))
        return method

    return mark


class Projector:
    """A read-model builder. Subclass it (``handle_<eventname>`` and ``@handles`` methods) or use ``on()`` on an
    instance.

    ``<eventname>`` is the event class's name in lowercase (``handle_orderplaced``); a ``handle_`` method that
    matches no event is refused when the application is built. A projector is not changed by the applications
    that run it, so one instance may serve several.

    Args:
        name: unique name (async projections keep their checkpoint under it); default
            ``<module>.<ClassName>``.
        views: views written by handlers, in addition to ``View`` class attributes.
        inline: True (default) to update in the append's transaction; False to follow the log afterwards.
    """

    inline: bool = True

    def __init__(self, name: str | None = None, *, views: Sequence[View[Any]] = (), inline: bool | None = None) -> None:
        self.name = name
        self._declared_views = list(views)
        self._registered: list[tuple[type[Event], Callable[..., Any]]] = []
        if inline is not None:
            self.inline = inline

    def on(self, *event_types: type[Event]) -> Callable[[F], F]:
        """Decorator: register a function as the handler of ``event_types``."""
        if not event_types:
            raise ConfigurationError("on() needs at least one event type")

        def register(handler: F) -> F:
            for event_type in event_types:
                self._registered.append((event_type, handler))
            return handler

        return register

    @property
    def registered(self) -> list[tuple[type[Event], Callable[..., Any]]]:
        """The handlers routed by event type, with the type each is for: ``on()`` functions, then ``@handles``
        methods (bound to this projector)."""
        found = list(self._registered)
        for name in self._marked():
            method = getattr(self, name)
            found.extend((event_type, method) for event_type in getattr(method, _HANDLES))
        return found

    def _marked(self) -> list[str]:
        """The names of the methods marked with ``@handles``, in definition order."""
        names: dict[str, None] = {}
        for klass in reversed(type(self).__mro__):
            names.update((n, None) for n, v in vars(klass).items() if callable(v) and hasattr(v, _HANDLES))
        return list(names)

    def view_attributes(self) -> dict[str, View[Any]]:
        """The ``View`` class attributes, by attribute name."""
        found: dict[str, View[Any]] = {}
        for klass in reversed(type(self).__mro__):
            found.update((n, v) for n, v in vars(klass).items() if isinstance(v, View))
        return found

    def all_views(self) -> list[View[Any]]:
        """Every view this projector writes: ``View`` class attributes, then ``views=``."""
        found: list[View[Any]] = []
        for view in [*self.view_attributes().values(), *self._declared_views]:
            if view not in found:
                found.append(view)
        return found

    def handlers(
        self, registry: EventRegistry, visible: Callable[[type[Event]], bool] | None = None
    ) -> dict[str, list[Callable[..., Any]]]:
        """Return the handlers by stored event name: ``on()`` functions and ``@handles`` methods, then
        ``handle_<name>`` methods.

        A ``handle_<name>`` method matches the event class called ``<name>`` (case-insensitively) among the
        ``visible`` ones (its own module's events and its dependencies' contract events).

        Raises:
            ConfigurationError: two visible event classes share the name a method refers to.
            UnmatchedHandler: a ``handle_<name>`` method (not marked with ``@handles``) matches no visible event.
        """
        table: dict[str, list[Callable[..., Any]]] = {}
        for event_type, handler in self.registered:
            table.setdefault(registry.of(event_type).name, []).append(handler)
        marked = set(self._marked())
        matched: dict[str, str] = {}
        for info in registry:
            method_name = f"handle_{info.cls.__name__.lower()}"
            method = getattr(self, method_name, None)
            if method_name in marked or not callable(method) or (visible is not None and not visible(info.cls)):
                continue
            if method_name in matched:
                raise ConfigurationError(
                    f"{type(self).__name__}.{method_name} could mean {matched[method_name]} or {info.name}; "
                    "use @handles(EventType) to say which"
                )
            matched[method_name] = info.name
            table.setdefault(info.name, []).append(method)
        for method_name in dir(type(self)):
            unmatched = method_name.startswith("handle_") and method_name not in matched and method_name not in marked
            if unmatched and callable(getattr(self, method_name)):
                raise UnmatchedHandler(self._unmatched(method_name, registry, visible))
        return table

    def _unmatched(
        self, method_name: str, registry: EventRegistry, visible: Callable[[type[Event]], bool] | None
    ) -> str:
        where = f"projector {type(self).__qualname__}: method {method_name} matches no event"
        rule = (
            "A handle_<name> method names the event class in lowercase without underscores "
            "(BookAdded: handle_bookadded); or route a method by type with @handles(EventType)"
        )
        candidates: dict[str, type[Event]] = {}
        for info in registry:
            wanted = f"handle_{info.cls.__name__.lower()}"
            if wanted == method_name:  # the event exists, but this projection may not see it
                return (
                    f"{where} this projection may handle: {info.cls.__name__} is another module's, and this "
                    "module does not declare depends_on on it, or it is not in that module's contract"
                )
            if visible is None or visible(info.cls):
                candidates[wanted.replace("_", "")] = info.cls
        close = difflib.get_close_matches(method_name.replace("_", ""), candidates, n=1)
        if not close:
            return f"{where}. {rule}"
        event = candidates[close[0]]
        return f"{where}; did you mean handle_{event.__name__.lower()} (for {event.__name__})? {rule}"


class ProjectionContext:
    """What a projection handler receives beside the event: the stored record, and the views it may write."""

    __slots__ = ("_views", "record")

    def __init__(self, record: RecordedEvent, views: _GuardedViews) -> None:
        self.record = record
        self._views = views

    def view(self, view: View[D]) -> ViewWriter[D]:
        """Return the writer, in this event's transaction, of a view the projector declared.

        Raises:
            AccessDenied: the view is not one of the projector's.
        """
        return self._views.writer(view)


class _GuardedViews:
    """A store transaction seen through one projection: only its own views are reachable, by declaration."""

    __slots__ = ("_bound", "_name", "tx")

    def __init__(self, tx: ViewTransaction, bound: Mapping[View[Any], View[Any]], name: str) -> None:
        self.tx = tx
        self._bound = bound
        self._name = name

    def writer(self, view: View[Any]) -> ViewWriter[Any]:
        bound = self._bound.get(view)
        if bound is None:
            raise AccessDenied(
                f"projection {self._name} may only write the views it declares; {view!r} is not one of them"
            )
        return self.tx.writer(bound)


_CONTEXT, _EVENT, _SEED = 0, 1, 2
"""How a handler is called: ``(event, ctx)``; ``(event)``, a function; ``(event)``, the seed's method form."""


def _call_mode(handler: Callable[..., Any]) -> int:
    params = [
        p
        for p in inspect.signature(handler).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) not in (1, 2):
        raise ConfigurationError(
            f"projection handler {getattr(handler, '__qualname__', handler)!r} must take (event, ctx) or (event)"
        )
    if len(params) == 2:
        return _CONTEXT
    return _SEED if isinstance(getattr(handler, "__self__", None), Projector) else _EVENT


class BoundProjection:
    """A projector bound to its module, the registry and one application's views: what stores and runners
    execute.

    ``bind`` gives the application's copy of each view declaration the projector writes (``View.bound``).
    """

    def __init__(
        self,
        projector: Projector,
        module: str,
        registry: EventRegistry,
        visible: Callable[[type[Event]], bool] | None = None,
        *,
        bind: Callable[[View[Any]], View[Any]] | None = None,
    ) -> None:
        self.projector = projector
        self.module = module
        self.name = projector.name or f"{module}.{type(projector).__name__}"
        self.inline = projector.inline
        bind = bind or (lambda view: view.bound(module))
        bound = {view: bind(view) for view in projector.all_views()}
        self.views = list(bound.values())
        """This application's copies of the views the projection writes."""
        self._bound: dict[View[Any], View[Any]] = {**bound, **{v: v for v in bound.values()}}
        self._seed_views = {attr: bound[view] for attr, view in projector.view_attributes().items()}
        self._handlers: dict[str, list[tuple[Callable[..., Any], int, bool]]] = {}
        for name, hs in projector.handlers(registry, visible).items():
            self._handlers[name] = [self._prepared(h) for h in hs]
        if not self._handlers:
            raise ConfigurationError(
                f"projection {self.name} handles no registered event; check its handle_<name> methods and on()"
            )
        self._guard: _GuardedViews | None = None
        self._seed: Projector | None = None

    @staticmethod
    def _prepared(handler: Callable[..., Any]) -> tuple[Callable[..., Any], int, bool]:
        mode = _call_mode(handler)
        call = getattr(handler, "__func__", handler) if mode == _SEED else handler
        return call, mode, inspect.iscoroutinefunction(handler)

    @property
    def event_types(self) -> list[str]:
        """The stored names of the events this projection handles."""
        return list(self._handlers)

    def handles(self, type_name: str) -> bool:
        """Return whether a stored event type has handlers here."""
        return type_name in self._handlers

    def apply(self, record: RecordedEvent, tx: ViewTransaction) -> Any:
        """Run the handlers of ``record`` with the views of ``tx``; returns a coroutine when one is async."""
        handlers = self._handlers.get(record.type)
        if not handlers or record.forgotten:  # a forgotten subject's events are as if never written
            return None
        guard = self._guard
        if guard is None or guard.tx is not tx:
            guard = self._guard = _GuardedViews(tx, self._bound, self.name)
            self._seed = None
        if len(handlers) == 1 and not handlers[0][2]:
            self._call(handlers[0], record, guard)
            return None
        return self._apply_all(handlers, record, guard)

    def _call(self, handler: tuple[Callable[..., Any], int, bool], record: RecordedEvent, guard: _GuardedViews) -> Any:
        call, mode, _ = handler
        if mode == _CONTEXT:
            return call(record.event, ProjectionContext(record, guard))
        if mode == _SEED:
            return call(self._seed_self(guard), record.event)
        return call(record.event)

    def _seed_self(self, guard: _GuardedViews) -> Projector:
        """The projector as the seed's one-argument methods see it in ``guard``'s transaction: a copy whose view
        attributes are that transaction's writers."""
        seed = self._seed
        if seed is None or self._guard is not guard:
            seed = copy.copy(self.projector)
            for attr, view in self._seed_views.items():
                seed.__dict__[attr] = guard.tx.writer(view)
            if self._guard is guard:
                self._seed = seed
        return seed

    async def _apply_all(
        self, handlers: list[tuple[Callable[..., Any], int, bool]], record: RecordedEvent, guard: _GuardedViews
    ) -> None:
        for handler in handlers:
            result = self._call(handler, record, guard)
            if handler[2]:
                await result
