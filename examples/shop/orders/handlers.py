"""Orders' handlers, and the process manager that turns payments and refunds into access to content.

Every change of an order goes through ``decide_order``, which also queues the order's seat requests.
"""

from __future__ import annotations

import msgspec

from citadel import CommandContext, InvalidCommand, NotFound, ProcessManager, QueryContext
from examples.shop.content.contract import GetPrices, GrantAccess, PriceList, RevokeAccess
from examples.shop.orders.contract import (
    CancelOrder,
    CreateOrder,
    GetOrder,
    MarkOrderPaid,
    MarkOrderRefunded,
    NewOrder,
    OrderPaid,
    OrderRefunded,
    OrderRefused,
    OrderSummary,
)
from examples.shop.orders.domain import MarkSeatsReserved, PlaceOrder, RefuseOrder, order_total
from examples.shop.orders.projections import OrderSummaries
from examples.shop.orders.seating import decide_order
from examples.shop.users.contract import GetUser


async def create_order(command: CreateOrder, ctx: CommandContext) -> NewOrder:
    try:
        await ctx.query(GetUser(user_id=command.customer_id))
    except NotFound:
        raise InvalidCommand(f"no customer {command.customer_id}") from None
    catalog: PriceList = await ctx.query(GetPrices(content_ids=[item.content_id for item in command.items]))
    order_id = ctx.new_id()
    place = PlaceOrder(
        order_id=order_id,
        customer_id=command.customer_id,
        items=command.items,
        prices=catalog.prices,
        seated=catalog.seated,
    )
    await decide_order(ctx, order_id, place, new=True)  # a new id: no stream to read
    status = "reserving" if any(item.content_id in catalog.seated for item in command.items) else "created"
    return NewOrder(order_id=order_id, total=order_total(command.items, catalog.prices), status=status)


async def change_order(
    command: CancelOrder | MarkOrderPaid | MarkOrderRefunded | MarkSeatsReserved | RefuseOrder, ctx: CommandContext
) -> None:
    await decide_order(ctx, command.order_id, command)


async def orderer(message: CreateOrder | CancelOrder | GetOrder, ctx: QueryContext) -> str | None:
    """An order belongs to its customer (None when there is no such order)."""
    if isinstance(message, CreateOrder):
        return message.customer_id
    row = await ctx.view(OrderSummaries.orders).get(message.order_id)
    return row.customer_id if row is not None else None


async def get_order(query: GetOrder, ctx: QueryContext) -> OrderSummary:
    row = await ctx.view(OrderSummaries.orders).get(query.order_id)
    if row is None:
        raise NotFound(f"no order {query.order_id}")
    return msgspec.convert(row, OrderSummary, from_attributes=True)


access = ProcessManager("orders.access")


@access.on(OrderPaid)
def grant_bought_content(event: OrderPaid) -> GrantAccess:
    content_ids = [item.content_id for item in event.items]
    return GrantAccess(user_id=event.customer_id, order_id=event.order_id, content_ids=content_ids)


@access.on(OrderRefunded)
def revoke_refunded_content(event: OrderRefunded) -> RevokeAccess:
    content_ids = [item.content_id for item in event.items]
    return RevokeAccess(user_id=event.customer_id, order_id=event.order_id, content_ids=content_ids)


@access.on(OrderRefused)
def revoke_refused_content(event: OrderRefused) -> RevokeAccess | None:
    if event.previous_status != "paid":
        return None  # nothing was granted
    content_ids = [item.content_id for item in event.items]
    return RevokeAccess(user_id=event.customer_id, order_id=event.order_id, content_ids=content_ids)
