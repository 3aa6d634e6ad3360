"""Orders: customers order content at catalog prices, reserving seats first where an item has them; billing
marks them paid or refunded."""

from __future__ import annotations

from citadel import Module
from examples.shop.orders import contract
from examples.shop.orders.contract import CancelOrder, CreateOrder, GetOrder, MarkOrderPaid, MarkOrderRefunded
from examples.shop.orders.domain import (
    MarkSeatsReserved,
    OrderSeatsHeld,
    RefuseOrder,
    SeatsGivenBack,
    SeatsPaidFor,
    SeatsRequested,
)
from examples.shop.orders.handlers import access, change_order, create_order, get_order, orderer
from examples.shop.orders.projections import OrderSummaries
from examples.shop.orders.seating import seating


def module() -> Module:
    """Return a new orders module (an application binds its projections, so build one per application)."""
    return Module(
        "orders",
        package=__name__,
        contract=contract,
        commands={
            CreateOrder: create_order,
            CancelOrder: change_order,
            MarkOrderPaid: change_order,
            MarkOrderRefunded: change_order,
            MarkSeatsReserved: change_order,
            RefuseOrder: change_order,
        },
        queries={GetOrder: get_order},
        owners={CreateOrder: orderer, CancelOrder: orderer, GetOrder: orderer},
        events=[OrderSeatsHeld, SeatsRequested, SeatsPaidFor, SeatsGivenBack],
        projections=[OrderSummaries()],
        process_managers=[access, seating],
        depends_on=["users", "content"],
    )
