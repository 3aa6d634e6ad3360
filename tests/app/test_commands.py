"""The command path of an application: unit of work, read-your-writes, idempotency, conflicts, metadata."""

from __future__ import annotations

import asyncio

import pytest
from mini import GetInvoice, GetOrder, OrderRow, PayInvoice, PlaceOrder

from citadel import (
    Actor,
    Application,
    DispatchContext,
    DomainError,
    IdempotencyConflict,
    NotFound,
)
from citadel.testing import settle


async def invoice_for(app: Application, order_id: str) -> dict[str, object]:
    for _ in range(200):
        try:
            result: dict[str, object] = await app.query(GetInvoice(order_id=order_id))
            return result
        except NotFound:
            await asyncio.sleep(0.01)
    raise AssertionError("the invoice never appeared")


async def test_a_command_result_comes_back_and_its_inline_view_is_readable_at_once(app: Application) -> None:
    outcome = await app.execute(PlaceOrder(customer="ann", amount=500))
    order_id = outcome.result["order_id"]
    (placed,) = await app.store.read_stream(f"order-{order_id}")
    assert outcome.position == placed.position
    assert await app.query(GetOrder(order_id=order_id)) == OrderRow(order_id, "ann", 500, "placed")


async def test_a_retry_with_the_same_idempotency_key_returns_the_first_result_and_writes_nothing(
    app: Application,
) -> None:
    first = await app.execute(PlaceOrder(customer="ann", amount=1), DispatchContext(idempotency_key="k-1"))
    head = await app.store.last_position()
    again = await app.execute(PlaceOrder(customer="ann", amount=1), DispatchContext(idempotency_key="k-1"))
    assert again.result == first.result
    assert (again.position, again.replayed) == (first.position, True)
    assert await app.store.last_position() == head


async def test_the_same_idempotency_key_with_another_payload_is_rejected(app: Application) -> None:
    await app.dispatch(PlaceOrder(customer="ann", amount=1), DispatchContext(idempotency_key="k-1"))
    with pytest.raises(IdempotencyConflict):
        await app.dispatch(PlaceOrder(customer="ann", amount=2), DispatchContext(idempotency_key="k-1"))


async def test_concurrent_retries_with_one_key_commit_once_and_all_get_the_same_result(app: Application) -> None:
    results = await asyncio.gather(
        *(
            app.dispatch(PlaceOrder(customer="bob", amount=7), DispatchContext(idempotency_key="same"))
            for _ in range(20)
        )
    )
    assert len({r["order_id"] for r in results}) == 1
    await settle(app)
    placed = [r for r in await app.store.read_all() if r.type == "orders.OrderPlaced"]
    assert len(placed) == 1


async def test_concurrent_payments_of_one_invoice_let_exactly_one_succeed(app: Application) -> None:
    order_id = (await app.dispatch(PlaceOrder(customer="cy", amount=30)))["order_id"]
    await invoice_for(app, order_id)
    results = await asyncio.gather(
        *(app.dispatch(PayInvoice(order_id=order_id, amount=30)) for _ in range(25)), return_exceptions=True
    )
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert succeeded == [{"status": "paid"}]
    assert all(isinstance(e, DomainError) for e in refused), refused
    assert (await app.query(GetInvoice(order_id=order_id)))["status"] == "paid"


async def test_a_refused_command_writes_nothing(app: Application) -> None:
    order_id = (await app.dispatch(PlaceOrder(customer="di", amount=30)))["order_id"]
    await invoice_for(app, order_id)
    head = await app.store.last_position()
    with pytest.raises(DomainError, match="wrong amount"):
        await app.dispatch(PayInvoice(order_id=order_id, amount=29))
    assert await app.store.last_position() == head


async def test_events_record_actor_correlation_and_causation(app: Application) -> None:
    context = DispatchContext(actor=Actor("user-7", frozenset({"customer"})), correlation_id="req-1")
    order_id = (await app.dispatch(PlaceOrder(customer="ed", amount=3), context))["order_id"]
    await invoice_for(app, order_id)
    await settle(app)
    placed, opened = await app.store.read_all()
    assert (placed.actor, placed.correlation_id, placed.causation_id) == ("user-7", "req-1", context.message_id)
    # the process manager's command: same conversation, caused by the order event, done by the system
    assert (opened.correlation_id, opened.causation_id, opened.actor) == ("req-1", placed.event_id, "system")
