"""Analytics: revenue and orders by status, from orders' and billing's events."""

from __future__ import annotations

from citadel import Module
from examples.shop.analytics import contract
from examples.shop.analytics.contract import GetOrdersByStatus, GetRevenue
from examples.shop.analytics.handlers import get_orders_by_status, get_revenue
from examples.shop.analytics.projections import OrdersByStatus, RevenueTotals


def module() -> Module:
    """Return a new analytics module (an application binds its projections, so build one per application)."""
    return Module(
        "analytics",
        package=__name__,
        contract=contract,
        queries={GetRevenue: get_revenue, GetOrdersByStatus: get_orders_by_status},
        projections=[RevenueTotals(), OrdersByStatus()],
        depends_on=["orders", "billing"],
    )
