"""Analytics read models: counters that follow the log asynchronously (rebuildable from zero)."""

from __future__ import annotations

from citadel import ProjectionContext, Projector, View
from examples.shop.billing.contract import InvoicePaid, InvoiceRefunded
from examples.shop.orders.contract import (
    OrderCancelled,
    OrderCreated,
    OrderPaid,
    OrderRefunded,
    OrderRefused,
    OrderReserved,
)

TOTAL = "all"  # the key of the single document each view keeps

REVENUE = View[dict[str, int]]("revenue")
STATUSES = View[dict[str, int]]("order_statuses")


class RevenueTotals(Projector):
    """Paid orders (net of refunds), revenue kept and amount refunded, in cents."""

    def __init__(self) -> None:
        super().__init__(views=[REVENUE], inline=False)

    def handle_invoicepaid(self, event: InvoicePaid, ctx: ProjectionContext) -> None:
        ctx.view(REVENUE).increment(TOTAL, "paid_orders", 1)
        ctx.view(REVENUE).increment(TOTAL, "revenue", event.amount)

    def handle_invoicerefunded(self, event: InvoiceRefunded, ctx: ProjectionContext) -> None:
        ctx.view(REVENUE).increment(TOTAL, "paid_orders", -1)
        ctx.view(REVENUE).increment(TOTAL, "revenue", -event.amount)
        ctx.view(REVENUE).increment(TOTAL, "refunded", event.amount)


class OrdersByStatus(Projector):
    """How many orders are in each status: each transition moves one order from a count to another."""

    def __init__(self) -> None:
        super().__init__(views=[STATUSES], inline=False)

    def handle_ordercreated(self, event: OrderCreated, ctx: ProjectionContext) -> None:
        ctx.view(STATUSES).increment(TOTAL, "reserving" if event.seated else "created", 1)

    def handle_orderreserved(self, event: OrderReserved, ctx: ProjectionContext) -> None:
        _move(ctx, "reserving", "created")

    def handle_orderrefused(self, event: OrderRefused, ctx: ProjectionContext) -> None:
        _move(ctx, event.previous_status, "refused")

    def handle_orderpaid(self, event: OrderPaid, ctx: ProjectionContext) -> None:
        _move(ctx, "created", "paid")

    def handle_ordercancelled(self, event: OrderCancelled, ctx: ProjectionContext) -> None:
        _move(ctx, event.previous_status, "cancelled")

    def handle_orderrefunded(self, event: OrderRefunded, ctx: ProjectionContext) -> None:
        _move(ctx, "paid", "refunded")


def _move(ctx: ProjectionContext, source: str, target: str) -> None:
    ctx.view(STATUSES).increment(TOTAL, source, -1)
    ctx.view(STATUSES).increment(TOTAL, target, 1)
