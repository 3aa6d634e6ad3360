"""The orders contract: create and cancel orders, mark them paid or refunded, and the events they emit.

An order of an item with limited seats starts ``reserving``: it awaits content's answer, then either proceeds
(``OrderReserved``: billed, payable) or ends ``refused`` (``OrderRefused``, with the reason).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from citadel import Command, Event, Query
from citadel.types import Id


class OrderItem(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an order: an item of content and how many."""

    content_id: Id
    quantity: int


class CreateOrder(Command, name="orders.CreateOrder"):
    """Order items at the catalog's prices (the client sends no prices)."""

    customer_id: Id
    items: Annotated[list[OrderItem], msgspec.Meta(max_length=100)]


class CancelOrder(Command, name="orders.CancelOrder"):
    """Cancel an order that is not paid yet (its seats, if any, are released)."""

    order_id: Id


class MarkOrderPaid(Command, name="orders.MarkOrderPaid", expose=False):
    """Record the payment of an order (sent by billing); nothing happens unless the order is awaiting it."""

    order_id: Id


class MarkOrderRefunded(Command, name="orders.MarkOrderRefunded", expose=False):
    """Record the refund of a paid order (sent by billing); nothing happens unless the order is paid."""

    order_id: Id


class GetOrder(Query, name="orders.GetOrder"):
    """An order's status and total; ``NotFound`` if there is none."""

    order_id: Id


class OrderCreated(Event, name="orders.OrderCreated"):
    """``seated``: the items whose seats the order reserves first; empty, it awaits payment at once."""

    order_id: str
    customer_id: str
    items: list[OrderItem]
    total: int
    seated: list[str] = []


class OrderReserved(Event, name="orders.OrderReserved"):
    """Every seat the order needs is held for it: it awaits payment."""

    order_id: str
    customer_id: str
    total: int


class OrderRefused(Event, name="orders.OrderRefused"):
    """The order cannot have its seats (``reason``): it ends; ``previous_status`` tells what it was."""

    order_id: str
    customer_id: str
    items: list[OrderItem]
    reason: str
    previous_status: str


class OrderCancelled(Event, name="orders.OrderCancelled"):
    order_id: str
    customer_id: str
    previous_status: str = "created"


class OrderPaid(Event, name="orders.OrderPaid"):
    order_id: str
    customer_id: str
    items: list[OrderItem]


class OrderRefunded(Event, name="orders.OrderRefunded"):
    order_id: str
    customer_id: str
    items: list[OrderItem]


class NewOrder(msgspec.Struct, frozen=True, kw_only=True):
    """What ``CreateOrder`` returns: the order's id and total in cents."""

    order_id: str
    total: int
    status: str = "created"
    """``reserving`` when the order waits for seats first."""


class OrderSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetOrder`` returns; ``status`` is reserving, created, paid, cancelled, refused (``reason`` says
    why) or refunded."""

    order_id: str
    customer_id: str
    status: str
    total: int
    reason: str = ""
