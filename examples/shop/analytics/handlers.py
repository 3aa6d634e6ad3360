"""Analytics' query handlers."""

from __future__ import annotations

from citadel import QueryContext
from examples.shop.analytics.contract import GetOrdersByStatus, GetRevenue, RevenueReport, StatusCounts
from examples.shop.analytics.projections import REVENUE, STATUSES, TOTAL


async def get_revenue(query: GetRevenue, ctx: QueryContext) -> RevenueReport:
    totals = await ctx.view(REVENUE).get(TOTAL) or {}
    return RevenueReport(
        paid_orders=totals.get("paid_orders", 0), revenue=totals.get("revenue", 0), refunded=totals.get("refunded", 0)
    )


async def get_orders_by_status(query: GetOrdersByStatus, ctx: QueryContext) -> StatusCounts:
    counts = await ctx.view(STATUSES).get(TOTAL) or {}
    return StatusCounts(
        created=counts.get("created", 0),
        paid=counts.get("paid", 0),
        cancelled=counts.get("cancelled", 0),
        refunded=counts.get("refunded", 0),
        reserving=counts.get("reserving", 0),
        refused=counts.get("refused", 0),
    )
