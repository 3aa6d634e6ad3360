"""Orders: customers order content at catalog prices; billing marks them paid or refunded."""

from __future__ import annotations

from citadel import Module
from examples.shop.orders import contract
from examples.shop.orders.contract import CancelOrder, CreateOrder, GetOrder, MarkOrderPaid, MarkOrderRefunded
from examples.shop.orders.handlers import (
    access,
    cancel_order,
    create_order,
    get_order,
    mark_order_paid,
    mark_order_refunded,
    orderer,
)
from examples.shop.orders.projections import OrderSummaries


def module() -> Module:
    """Return a new orders module (an application binds its projections, so build one per application)."""
    return Module(
        "orders",
        package=__name__,
        contract=contract,
        commands={
            CreateOrder: create_order,
            CancelOrder: cancel_order,
            MarkOrderPaid: mark_order_paid,
            MarkOrderRefunded: mark_order_refunded,
        },
        queries={GetOrder: get_order},
        owners={CreateOrder: orderer, CancelOrder: orderer, GetOrder: orderer},
        projections=[OrderSummaries()],
        process_managers=[access],
        depends_on=["users", "content"],
    )
