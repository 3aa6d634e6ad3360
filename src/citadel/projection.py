"""Projectors: pure folds from events to read models (views).

Two ways to write one, mixable::

    class OrderSummaries(Projector):              # the seed's convention
        views = View("orders")

        def handle_ordercreated(self, event: OrderCreated) -> None:
            self.views[event.order_id] = {"status": "created", "total": event.total}

    revenue = Projector("analytics.revenue", views=[REVENUE], inline=False)

    @revenue.on(InvoicePaid)                     # decorators
    def paid(event: InvoicePaid, ctx: ProjectionContext) -> None:
        ctx.view(REVENUE).increment("total", "revenue", event.amount)

A handler takes the event, and optionally a ``ProjectionContext`` (the stored record's metadata, and
``view()`` for views declared in ``views=``). Handlers only write views; the framework runs them inside the
store's transaction: *inline* projectors in the same transaction as the append (read-your-writes), *async*
ones in the same transaction as their checkpoint (exactly once in effect).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from citadel.errors import AccessDenied, ConfigurationError, UnmatchedHandler
from citadel.messages import Event, EventRegistry
from citadel.views import View

if TYPE_CHECKING:
    from citadel.store.base import RecordedEvent, ViewTransaction
    from citadel.views import ViewWriter

__all__ = ["BoundProjection", "ProjectionContext", "Projector"]

F = TypeVar("F", bound=Callable[..., Any])
D = TypeVar("D")


class Projector:
    """A read-model builder. Subclass it (``handle_<eventname>`` methods) or use ``on()`` on an instance.

    ``<eventname>`` is the event class's name in lowercase (``handle_orderplaced``); a ``handle_`` method that
    matches no event is refused when the application is built.

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
        self._citadel_tx: Any = None
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
        """The handlers registered with ``on()``, with the event type each was registered for."""
        return list(self._registered)

    def all_views(self) -> list[View[Any]]:
        """Every view this projector writes: ``View`` class attributes, then ``views=``."""
        found: list[View[Any]] = []
        for klass in reversed(type(self).__mro__):
            found.extend(v for v in vars(klass).values() if isinstance(v, View))
        found.extend(v for v in self._declared_views if v not in found)
        return found

    def handlers(
        self, registry: EventRegistry, visible: Callable[[type[Event]], bool] | None = None
    ) -> dict[str, list[Callable[..., Any]]]:
        """Return the handlers by stored event name: decorated functions, then ``handle_<name>`` methods.

        A ``handle_<name>`` method matches the event class called ``<name>`` (case-insensitively) among the
        ``visible`` ones (its own module's events and its dependencies' contract events).

        Raises:
            ConfigurationError: two visible event classes share the name a method refers to.
            UnmatchedHandler: a ``handle_<name>`` method matches no visible event.
        """
        table: dict[str, list[Callable[..., Any]]] = {}
        for event_type, handler in self._registered:
            table.setdefault(registry.of(event_type).name, []).append(handler)
        matched: dict[str, str] = {}
        for info in registry:
            method_name = f"handle_{info.cls.__name__.lower()}"
            method = getattr(self, method_name, None)
            if not callable(method) or (visible is not None and not visible(info.cls)):
                continue
            if method_name in matched:
                raise ConfigurationError(
                    f"{type(self).__name__}.{method_name} could mean {matched[method_name]} or {info.name}; "
                    "use @projector.on(EventType) to say which"
                )
            matched[method_name] = info.name
            table.setdefault(info.name, []).append(method)
        for method_name in dir(type(self)):
            unmatched = method_name.startswith("handle_") and method_name not in matched
            if unmatched and callable(getattr(self, method_name)):
                raise UnmatchedHandler(self._unmatched(method_name, registry, visible))
        return table

    def _unmatched(
        self, method_name: str, registry: EventRegistry, visible: Callable[[type[Event]], bool] | None
    ) -> str:
        where = f"projector {type(self).__qualname__}: method {method_name} matches no event"
        rule = (
            "A handle_<name> method names the event class in lowercase without underscores "
            "(BookAdded: handle_bookadded); or register a handler with @projector.on(EventType)"
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
    """What a two-argument projection handler receives: the record and the views it may write."""

    __slots__ = ("_tx", "record")

    def __init__(self, record: RecordedEvent, tx: _GuardedViews) -> None:
        self.record = record
        self._tx = tx

    def view(self, view: View[D]) -> ViewWriter[D]:
        """Return the writer of a view the projector declared.

        Raises:
            AccessDenied: the view is not one of the projector's.
        """
        return self._tx.writer(view)


class _GuardedViews:
    """A store transaction seen through a projector: only its own views are reachable."""

    __slots__ = ("_allowed", "_name", "_tx")

    def __init__(self, tx: ViewTransaction, allowed: frozenset[int], name: str) -> None:
        self._tx = tx
        self._allowed = allowed
        self._name = name

    def writer(self, view: View[Any]) -> ViewWriter[Any]:
        if id(view) not in self._allowed:
            raise AccessDenied(
                f"projection {self._name} may only write the views it declares; {view!r} is not one of them"
            )
        return self._tx.writer(view)


def _wants_context(handler: Callable[..., Any]) -> bool:
    params = [
        p
        for p in inspect.signature(handler).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) not in (1, 2):
        raise ConfigurationError(
            f"projection handler {getattr(handler, '__qualname__', handler)!r} must take (event) or (event, ctx)"
        )
    return len(params) == 2


class BoundProjection:
    """A projector bound to its module and the registry: what stores and runners execute."""

    def __init__(
        self,
        projector: Projector,
        module: str,
        registry: EventRegistry,
        visible: Callable[[type[Event]], bool] | None = None,
    ) -> None:
        self.projector = projector
        self.module = module
        self.name = projector.name or f"{module}.{type(projector).__name__}"
        projector.name = self.name
        self.inline = projector.inline
        self.views = projector.all_views()
        for view in self.views:
            view.bind(module)
        self._allowed = frozenset(id(v) for v in self.views)
        self._handlers = {
            name: [(h, _wants_context(h), inspect.iscoroutinefunction(h)) for h in hs]
            for name, hs in projector.handlers(registry, visible).items()
        }
        if not self._handlers:
            raise ConfigurationError(
                f"projection {self.name} handles no registered event; check its handle_<name> methods and on()"
            )
        self._guard: _GuardedViews | None = None

    @property
    def event_types(self) -> list[str]:
        """The stored names of the events this projection handles."""
        return list(self._handlers)

    def handles(self, type_name: str) -> bool:
        """Return whether a stored event type has handlers here."""
        return type_name in self._handlers

    def apply(self, record: RecordedEvent, tx: ViewTransaction) -> Any:
        """Run the handlers of ``record``; returns a coroutine when one of them is async."""
        guard = self._guard
        if guard is None or guard._tx is not tx:
            guard = self._guard = _GuardedViews(tx, self._allowed, self.name)
        self.projector._citadel_tx = guard
        handlers = self._handlers.get(record.type)
        if not handlers or record.forgotten:  # a forgotten subject's events are as if never written
            return None
        event = record.event
        if len(handlers) == 1 and not handlers[0][2]:
            handler, with_context, _ = handlers[0]
            if with_context:
                handler(event, ProjectionContext(record, guard))
            else:
                handler(event)
            return None
        return self._apply_all(handlers, event, record, guard)

    async def _apply_all(
        self,
        handlers: list[tuple[Callable[..., Any], bool, bool]],
        event: Event,
        record: RecordedEvent,
        guard: _GuardedViews,
    ) -> None:
        for handler, with_context, is_async in handlers:
            result = handler(event, ProjectionContext(record, guard)) if with_context else handler(event)
            if is_async:
                await result
