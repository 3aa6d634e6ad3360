"""The orders read model: each order's status and total (the seed's ``handle_<event>`` convention)."""

from __future__ import annotations

import msgspec

from citadel import ProjectionContext, Projector, View
from examples.shop.orders.contract import (
    OrderCancelled,
    OrderCreated,
    OrderPaid,
    OrderRefunded,
    OrderRefused,
    OrderReserved,
)


class OrderRow(msgspec.Struct, kw_only=True):
    order_id: str
    customer_id: str
    status: str
    total: int
    reason: str = ""


class OrderSummaries(Projector):
    orders = View("orders", OrderRow, indexes=("customer_id",))

    def handle_ordercreated(self, event: OrderCreated, ctx: ProjectionContext) -> None:
        ctx.view(self.orders)[event.order_id] = OrderRow(
            order_id=event.order_id,
            customer_id=event.customer_id,
            status="reserving" if event.seated else "created",
            total=event.total,
        )

    def handle_orderreserved(self, event: OrderReserved, ctx: ProjectionContext) -> None:
        ctx.view(self.orders).merge(event.order_id, status="created")

    def handle_orderrefused(self, event: OrderRefused, ctx: ProjectionContext) -> None:
        ctx.view(self.orders).merge(event.order_id, status="refused", reason=event.reason)

    def handle_orderpaid(self, event: OrderPaid, ctx: ProjectionContext) -> None:
        ctx.view(self.orders).merge(event.order_id, status="paid")

    def handle_ordercancelled(self, event: OrderCancelled, ctx: ProjectionContext) -> None:
        ctx.view(self.orders).merge(event.order_id, status="cancelled")

    def handle_orderrefunded(self, event: OrderRefunded, ctx: ProjectionContext) -> None:
        ctx.view(self.orders).merge(event.order_id, status="refunded")
