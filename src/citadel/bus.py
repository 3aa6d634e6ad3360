"""Command and query buses: route a message by its type to exactly one handler, through middleware.

The seed's ``CommandBus`` shape (``register``/``dispatch``), made production-grade::

    bus = CommandBus()
    bus.register(CreateOrder, create_order)      # a second registration raises DuplicateHandler
    result = await bus.dispatch(CreateOrder(...))  # an unregistered type raises UnknownCommand

Handlers take the message, and optionally the dispatch context as a second argument. Async handlers are
awaited; plain functions run in a worker thread (they may block), as Starlette does with sync endpoints.

Middleware wraps every dispatch: ``async def mw(message, context, call_next) -> result``; it may inspect or
replace the context, refuse the message by raising, or post-process the result.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from citadel.context import DispatchContext
from citadel.errors import ConfigurationError, DuplicateHandler, UnknownCommand, UnknownQuery
from citadel.messages import Command, Message, Query
from citadel.tracing import command_span, enabled

__all__ = ["CallNext", "CommandBus", "Handler", "Middleware", "QueryBus", "as_async_handler", "parameter_mismatch"]

M = TypeVar("M", bound=Message)

Handler = Callable[..., Any]
"""``(message)`` or ``(message, context)``, sync or async, returning the result."""

CallNext = Callable[[Message, DispatchContext], Awaitable[Any]]
Middleware = Callable[[Message, DispatchContext, CallNext], Awaitable[Any]]
AsyncHandler = Callable[[Any, Any], Awaitable[Any]]


def as_async_handler(handler: Handler) -> AsyncHandler:
    """Normalise a handler to ``async (message, context) -> result``.

    Raises:
        ConfigurationError: the handler does not take one or two positional parameters.
    """
    try:
        positional = [
            p
            for p in inspect.signature(handler).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"cannot inspect handler {handler!r}: {exc}") from exc
    required = sum(1 for p in positional if p.default is p.empty)
    # (message, context=None) receives the context too; only the first two positions count.
    arity = min(len(positional), 2) if required <= 2 else required
    if arity not in (1, 2) or required == 0:
        raise ConfigurationError(
            f"handler {getattr(handler, '__qualname__', handler)!r} must take (message) or (message, context), "
            f"it takes {arity} required parameters"
        )
    is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an object with an async __call__
    )
    if is_async:
        if arity == 2:
            return handler

        async def one_arg(message: Any, context: Any) -> Any:
            return await handler(message)

        return one_arg

    call: Callable[[Any, Any], Any] = handler if arity == 2 else (lambda message, context: handler(message))

    async def in_thread(message: Any, context: Any) -> Any:
        result = await asyncio.to_thread(call, message, context)
        if inspect.isawaitable(result):
            result = await result
        return result

    return in_thread


def parameter_mismatch(handler: Callable[..., Any], message_type: type) -> str | None:
    """Return ``handler``'s first parameter as written (``command: Borrow``) when its annotation does not accept
    ``message_type``; None when it does, or when it has no annotation that can be resolved here."""
    try:
        parameters = inspect.signature(handler, eval_str=True).parameters.values()
    except Exception:  # no signature, or an annotation that does not resolve: nothing to check
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional or positional[0].annotation is inspect.Parameter.empty:
        return None
    first = positional[0]
    if _accepts(first.annotation, message_type):
        return None
    shown = getattr(first.annotation, "__name__", None) or repr(first.annotation).replace("typing.", "")
    return f"{first.name}: {shown}"


def _accepts(hint: Any, message_type: type) -> bool:
    origin = get_origin(hint)
    if origin is Annotated:
        return _accepts(get_args(hint)[0], message_type)
    if origin in (Union, types.UnionType):
        return any(_accepts(arg, message_type) for arg in get_args(hint))
    if hint is Any or not isinstance(hint, type) or origin is not None:
        return True  # Any, a type variable, a generic alias: not ours to judge
    try:
        return issubclass(message_type, hint)
    except TypeError:  # a protocol that cannot be checked at run time
        return True


class _Bus(Generic[M]):
    _unknown: Callable[[type], Exception]
    _kind: str

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self._handlers: dict[type, AsyncHandler] = {}
        self._names: dict[type, str] = {}  # stable names, for the ``dispatch`` spans
        self._middleware: list[Middleware] = list(middleware)
        self._chain: CallNext | None = None

    def register(self, message_type: type[M], handler: Handler, *, name: str | None = None) -> None:
        """Register the one handler of ``message_type``; ``name``: its stable name (``orders.CreateOrder``), which
        its ``dispatch`` span shows (default: the class name).

        Raises:
            DuplicateHandler: the type already has a handler.
            ConfigurationError: the handler has the wrong shape.
        """
        if message_type in self._handlers:
            raise DuplicateHandler(message_type)
        self._handlers[message_type] = as_async_handler(handler)
        self._names[message_type] = name or message_type.__name__

    def replace(self, message_type: type[M], handler: Handler) -> AsyncHandler:
        """Swap the handler of a registered type and return the one it had (the application forwards a remote
        module's messages so, and puts the local handler back when it stops).

        Raises:
            UnknownCommand or UnknownQuery: the type has no handler to replace.
        """
        previous = self._handlers.get(message_type)
        if previous is None:
            raise self._unknown(message_type)
        self._handlers[message_type] = as_async_handler(handler)
        return previous

    def add_middleware(self, middleware: Middleware) -> None:
        """Add middleware; the first added is the outermost."""
        self._middleware.append(middleware)
        self._chain = None

    def handles(self, message_type: type) -> bool:
        """Return whether ``message_type`` has a handler."""
        return message_type in self._handlers

    @property
    def message_types(self) -> list[type]:
        """The registered message types, in registration order."""
        return list(self._handlers)

    def _call_handler(self, message: Message, context: DispatchContext) -> Awaitable[Any]:
        # A plain function handing the handler's coroutine on: one coroutine less per message. It runs inside
        # ``dispatch``'s coroutine, so an unknown type still raises where the dispatch is awaited.
        handler = self._handlers.get(type(message))
        if handler is None:
            raise self._unknown(type(message))
        return handler(message, context)

    def _build_chain(self) -> CallNext:
        chain: CallNext = self._call_handler
        for middleware in reversed(self._middleware):
            chain = functools.partial(_step, middleware, chain)
        return chain

    async def dispatch(self, message: M, context: DispatchContext | None = None) -> Any:
        """Run the message through the middleware to its handler and return the handler's result.

        Raises:
            UnknownCommand or UnknownQuery: no handler is registered for the message's type.
            Whatever the handler or a middleware raises.
        """
        chain = self._chain
        if chain is None:
            chain = self._chain = self._build_chain()
        if enabled():
            with command_span(self._kind, self._names.get(type(message)) or type(message).__name__):
                return await chain(message, context if context is not None else DispatchContext())
        return await chain(message, context if context is not None else DispatchContext())


def _step(middleware: Middleware, call_next: CallNext, message: Message, context: DispatchContext) -> Awaitable[Any]:
    return middleware(message, context, call_next)


class CommandBus(_Bus[Command]):
    """Routes each command type to exactly one handler."""

    _unknown = UnknownCommand
    _kind = "command"


class QueryBus(_Bus[Query]):
    """Routes each query type to exactly one handler."""

    _unknown = UnknownQuery
    _kind = "query"
