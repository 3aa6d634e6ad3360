"""Command and query buses: one handler per type, handler shapes, middleware and the dispatch context."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from citadel import (
    ANONYMOUS,
    AccessDenied,
    Actor,
    CallNext,
    Command,
    CommandBus,
    ConfigurationError,
    DispatchContext,
    DomainError,
    DuplicateHandler,
    Message,
    Query,
    QueryBus,
    UnknownCommand,
    UnknownQuery,
)


class Greet(Command, name="unit.bus.Greet"):
    who: str


class Shout(Command, name="unit.bus.Shout"):
    who: str


class Lookup(Query, name="unit.bus.Lookup"):
    key: str


class Unanswered(Query, name="unit.bus.Unanswered"):
    pass


ALICE = Actor("alice", frozenset({"clerk"}))


async def greet(command: Greet) -> str:
    return f"hello {command.who}"


async def greet_as_actor(command: Greet, context: DispatchContext) -> str:
    return f"{context.actor.subject} greets {command.who}"


def greet_sync(command: Greet) -> str:
    return f"hello {command.who}"


def greet_sync_as_actor(command: Greet, context: DispatchContext) -> str:
    return f"{context.actor.subject} greets {command.who}"


def recorder(log: list[str], label: str) -> Callable[[Message, DispatchContext, CallNext], Any]:
    async def middleware(message: Message, context: DispatchContext, call_next: CallNext) -> Any:
        log.append(f"{label} before")
        result = await call_next(message, context)
        log.append(f"{label} after")
        return result

    return middleware


def greeting_bus(log: list[str]) -> CommandBus:
    async def handler(command: Greet) -> str:
        log.append("handler")
        return command.who

    bus = CommandBus()
    bus.register(Greet, handler)
    return bus


async def test_dispatching_a_command_returns_its_handler_result() -> None:
    bus = CommandBus()
    bus.register(Greet, greet)
    assert await bus.dispatch(Greet(who="bob")) == "hello bob"


async def test_dispatching_a_query_returns_its_handler_result() -> None:
    bus = QueryBus()
    bus.register(Lookup, lambda query: {"key": query.key})
    assert await bus.dispatch(Lookup(key="k")) == {"key": "k"}


def test_the_bus_lists_what_it_handles_in_registration_order() -> None:
    bus = CommandBus()
    bus.register(Shout, greet)
    bus.register(Greet, greet)
    assert (bus.handles(Greet), bus.handles(Lookup), bus.message_types) == (True, False, [Shout, Greet])


async def test_a_second_handler_for_one_type_is_refused_and_the_first_is_kept() -> None:
    bus = CommandBus()
    bus.register(Greet, greet)
    with pytest.raises(DuplicateHandler, match="Greet already has a handler") as caught:
        bus.register(Greet, greet_sync)
    assert isinstance(caught.value, ConfigurationError)
    assert isinstance(caught.value, ValueError)
    assert await bus.dispatch(Greet(who="bob")) == "hello bob"


async def test_dispatching_an_unregistered_command_raises_unknown_command() -> None:
    bus = CommandBus()
    bus.register(Greet, greet)
    with pytest.raises(UnknownCommand, match="no handler registered for command Shout") as caught:
        await bus.dispatch(Shout(who="bob"))
    assert isinstance(caught.value, LookupError)
    assert caught.value.command_type is Shout


async def test_dispatching_an_unregistered_query_raises_unknown_query() -> None:
    with pytest.raises(UnknownQuery, match="no handler registered for query Unanswered") as caught:
        await QueryBus().dispatch(Unanswered())
    assert isinstance(caught.value, LookupError)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (greet, "hello bob"),
        (greet_as_actor, "alice greets bob"),
        (greet_sync, "hello bob"),
        (greet_sync_as_actor, "alice greets bob"),
    ],
    ids=["async-message", "async-message-context", "sync-message", "sync-message-context"],
)
async def test_every_handler_shape_is_called_with_what_it_asks_for(handler: Callable[..., Any], expected: str) -> None:
    bus = CommandBus()
    bus.register(Greet, handler)
    assert await bus.dispatch(Greet(who="bob"), DispatchContext(actor=ALICE)) == expected


async def test_a_sync_handler_runs_off_the_event_loop_thread() -> None:
    threads: list[int] = []
    bus = CommandBus()
    bus.register(Greet, lambda command: threads.append(threading.get_ident()))
    await bus.dispatch(Greet(who="bob"))
    assert threads
    assert threads != [threading.get_ident()]


async def test_an_async_handler_runs_on_the_event_loop_thread() -> None:
    threads: list[int] = []

    async def handler(command: Greet) -> None:
        threads.append(threading.get_ident())

    bus = CommandBus()
    bus.register(Greet, handler)
    await bus.dispatch(Greet(who="bob"))
    assert threads == [threading.get_ident()]


@pytest.mark.parametrize(
    "handler",
    [lambda: None, lambda message, context, extra: None, lambda *, message: None],
    ids=["none", "three", "keyword-only"],
)
def test_a_handler_without_one_or_two_required_positional_parameters_is_refused(handler: Callable[..., Any]) -> None:
    bus = CommandBus()
    with pytest.raises(ConfigurationError, match="must take"):
        bus.register(Greet, handler)
    assert not bus.handles(Greet)


async def test_middleware_runs_in_order_with_the_first_added_outermost() -> None:
    log: list[str] = []
    bus = greeting_bus(log)
    bus.add_middleware(recorder(log, "outer"))
    bus.add_middleware(recorder(log, "inner"))
    await bus.dispatch(Greet(who="bob"))
    assert log == ["outer before", "inner before", "handler", "inner after", "outer after"]


async def test_middleware_given_to_the_constructor_runs_outside_middleware_added_later() -> None:
    log: list[str] = []
    bus = CommandBus([recorder(log, "constructor")])
    bus.register(Greet, greet)
    bus.add_middleware(recorder(log, "added"))
    await bus.dispatch(Greet(who="bob"))
    assert log == ["constructor before", "added before", "added after", "constructor after"]


async def test_middleware_can_replace_the_context_the_handler_sees() -> None:
    async def authenticate(message: Message, context: DispatchContext, call_next: CallNext) -> Any:
        return await call_next(message, context.replace(actor=ALICE))

    bus = CommandBus([authenticate])
    bus.register(Greet, greet_as_actor)
    assert await bus.dispatch(Greet(who="bob")) == "alice greets bob"


async def test_middleware_can_refuse_a_message_and_the_handler_is_not_called() -> None:
    async def deny(message: Message, context: DispatchContext, call_next: CallNext) -> Any:
        raise AccessDenied(f"{context.actor.subject} may not {type(message).__name__}")

    log: list[str] = []
    bus = greeting_bus(log)
    bus.add_middleware(deny)
    with pytest.raises(AccessDenied, match="anonymous may not Greet"):
        await bus.dispatch(Greet(who="bob"))
    assert log == []


async def test_middleware_can_post_process_the_result() -> None:
    async def upper(message: Message, context: DispatchContext, call_next: CallNext) -> Any:
        return (await call_next(message, context)).upper()

    bus = CommandBus([upper])
    bus.register(Greet, greet)
    assert await bus.dispatch(Greet(who="bob")) == "HELLO BOB"


async def test_middleware_added_after_a_first_dispatch_still_runs() -> None:
    log: list[str] = []
    bus = greeting_bus(log)
    await bus.dispatch(Greet(who="bob"))
    bus.add_middleware(recorder(log, "late"))
    await bus.dispatch(Greet(who="bob"))
    assert log == ["handler", "late before", "handler", "late after"]


async def test_a_dispatch_without_a_context_gives_the_handler_a_fresh_default_one() -> None:
    seen: list[DispatchContext] = []
    bus = CommandBus()
    bus.register(Greet, lambda command, context: seen.append(context))
    await bus.dispatch(Greet(who="bob"))
    await bus.dispatch(Greet(who="bob"))
    assert [c.actor for c in seen] == [ANONYMOUS, ANONYMOUS]
    assert seen[0].message_id != seen[1].message_id


async def test_a_given_context_reaches_the_handler_as_is() -> None:
    seen: list[DispatchContext] = []
    bus = CommandBus()
    bus.register(Greet, lambda command, context: seen.append(context))
    context = DispatchContext(actor=ALICE)
    await bus.dispatch(Greet(who="bob"), context)
    assert seen == [context]


def test_a_default_context_correlates_to_its_own_message_id() -> None:
    context = DispatchContext()
    assert context.correlation_id == context.message_id
    assert (context.actor, context.causation_id, context.idempotency_key) == (ANONYMOUS, None, None)


def test_an_explicit_correlation_id_is_kept() -> None:
    assert DispatchContext(correlation_id="request-1").correlation_id == "request-1"


def test_a_child_context_keeps_actor_and_correlation_and_is_caused_by_its_parent() -> None:
    parent = DispatchContext(actor=ALICE, idempotency_key="key-1")
    child = parent.child()
    assert (child.actor, child.correlation_id, child.causation_id) == (ALICE, parent.message_id, parent.message_id)
    assert child.message_id != parent.message_id
    assert child.idempotency_key is None


def test_a_child_context_takes_its_own_idempotency_key() -> None:
    assert DispatchContext().child(idempotency_key="key-2").idempotency_key == "key-2"


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
async def test_an_error_raised_by_a_handler_reaches_the_caller_unchanged(is_async: bool) -> None:
    error = DomainError("refused")

    def refuse(command: Greet) -> None:
        raise error

    async def refuse_async(command: Greet) -> None:
        raise error

    bus = CommandBus()
    bus.register(Greet, refuse_async if is_async else refuse)
    with pytest.raises(DomainError) as caught:
        await bus.dispatch(Greet(who="bob"))
    assert caught.value is error
