"""The analytics contract: revenue and order counts, eventually consistent with orders and billing."""

from __future__ import annotations

import msgspec

from citadel import Query


class GetRevenue(Query, name="analytics.GetRevenue"):
    """Money kept and given back, in cents."""


class GetOrdersByStatus(Query, name="analytics.GetOrdersByStatus"):
    """How many orders are in each status now."""


class RevenueReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetRevenue`` returns: orders paid and not refunded, the net amount kept, and the amount refunded."""

    paid_orders: int
    revenue: int
    refunded: int


class StatusCounts(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetOrdersByStatus`` returns."""

    created: int
    paid: int
    cancelled: int
    refunded: int
