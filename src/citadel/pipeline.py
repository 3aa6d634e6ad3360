"""The terminal steps of the buses inside an application: run a handler in its module's context.

For commands this is the unit of work: handler, one atomic commit that also stores the idempotency key (a key
already stored answers as the first time did), conflict retries.

A retry whose stored result can no longer be read, because the subject it was sealed for was forgotten since,
is refused (``PayloadForgotten``) rather than run again: running it again would repeat its effects (a second
registration of the person who asked to be forgotten). Once the record expires, the key is free again.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from citadel.bus import Handler, as_async_handler
from citadel.context import DispatchContext
from citadel.errors import ConcurrencyError, IdempotencyConflict, PayloadForgotten
from citadel.handling import CommandContext, QueryContext, Runtime, current_receipt
from citadel.messages import Command, Query, encode_json
from citadel.store.base import Commit, IdempotencyRecord, Metadata
from citadel.tracing import enabled, handler_span
from citadel.tracing.carriers import stored_traceparent

if TYPE_CHECKING:
    from citadel.module import Module

__all__ = ["command_step", "query_step"]


def _result_decoder(handler: Handler) -> Callable[[bytes], Any]:
    """Decode a stored result into the handler's declared return type (plain JSON when undeclared)."""
    try:
        hints = typing.get_type_hints(handler)
    except Exception:
        hints = {}
    returns = hints.get("return")
    if returns is None or returns is Any:
        return msgspec.json.decode
    decoder = msgspec.json.Decoder(returns)
    return decoder.decode


def command_step(
    runtime: Runtime,
    module: Module,
    command_type: type[Command],
    handler: Handler,
    *,
    conflict_retries: int,
) -> Callable[[Command, DispatchContext], Awaitable[Any]]:
    """Wrap a command handler into the bus's terminal step for ``command_type``."""
    call = as_async_handler(handler)
    decode_result = _result_decoder(handler)
    type_name = module.message_name(command_type)
    name = type_name.encode()

    def replay(record: IdempotencyRecord, request_hash: str) -> Any:
        if record.request_hash != request_hash:
            raise IdempotencyConflict(record.key)
        if record.forgotten:
            raise PayloadForgotten(
                f"the command sent with idempotency key {record.key!r} ran, but its result was about a subject "
                "forgotten since: it cannot be given again, and the command is not run twice; send a new request"
            )
        receipt = current_receipt.get()
        if receipt is not None:
            receipt.position, receipt.replayed = record.position, True
        return decode_result(record.result)

    async def step(command: Command, context: DispatchContext) -> Any:
        store = runtime.store
        key = context.idempotency_key
        # A key is not looked up before the handler runs: the commit stores it, and refuses the commit when it is
        # taken, so a retry that got here after its twin (rare) is answered from the stored record below. Fresh
        # commands, nearly all of them, so save a read.
        request_hash = "" if key is None else store.request_hash(name + b"\0" + encode_json(command))
        traced = enabled()
        metadata = Metadata(  # while tracing, with the bus's ``dispatch`` span: its events' consumers link to it
            correlation_id=context.correlation_id,
            causation_id=context.causation_id or context.message_id,
            actor=context.actor.subject,
            causation_position=context.causation_position,
            traceparent=stored_traceparent() if traced else None,
        )
        attempt = 0
        presume_new = True
        while True:
            ctx = CommandContext(runtime, module, context, presume_new=presume_new)
            try:
                if traced:
                    with handler_span(type_name, module.name):
                        result = await call(command, ctx)
                else:
                    result = await call(command, ctx)
            except Exception:
                # A twin with the same key may have committed before (its effects then refuse us, e.g. "already
                # paid"): it answered first, so answer as it did.
                record = None if key is None else await store.idempotency_record(key)
                if record is not None:
                    return replay(record, request_hash)
                raise
            idempotency = (
                None if key is None else IdempotencyRecord(key, request_hash, encode_json(result), module=module.name)
            )
            receipt = current_receipt.get()
            if not ctx.staged and idempotency is None and not ctx.forgotten:
                if receipt is not None:
                    receipt.position = 0
                return result
            try:
                written = await store.commit(Commit(ctx.staged, metadata, idempotency, ctx.snapshots, ctx.forgotten))
            except ConcurrencyError:
                if key is not None:  # a twin with the same key may have committed first
                    record = await store.idempotency_record(key)
                    if record is not None:
                        return replay(record, request_hash)
                if ctx.presumed:  # a stream presumed new exists: run again, reading it (not a retry of a race)
                    presume_new = False
                    continue
                attempt += 1
                if attempt > conflict_retries:
                    raise
                continue
            except IdempotencyConflict:
                # A twin with the same key committed first: answer as it did.
                record = None if key is None else await store.idempotency_record(key)
                if record is None:
                    raise
                return replay(record, request_hash)
            if receipt is not None:
                receipt.position = written.position
            return result

    return step


def query_step(
    runtime: Runtime, module: Module, query_type: type[Query], handler: Handler
) -> Callable[[Query, DispatchContext], Awaitable[Any]]:
    """Wrap a query handler into the bus's terminal step: it receives a ``QueryContext`` of its module."""
    call = as_async_handler(handler)
    type_name = module.message_name(query_type)

    async def step(query: Query, context: DispatchContext) -> Any:
        if enabled():
            with handler_span(type_name, module.name):
                return await call(query, QueryContext(runtime, module, context))
        return await call(query, QueryContext(runtime, module, context))

    return step
