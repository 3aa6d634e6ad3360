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


class StatusCounts(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What ``GetOrdersByStatus`` returns; ``reserving`` and ``refused`` (orders of items with limited seats) are
    left out while they are 0, so a shop without such items answers as it always did."""

    created: int
    paid: int
    cancelled: int
    refunded: int
    reserving: int = 0
    refused: int = 0
