"""An order's stream: created at catalog prices, then paid, cancelled or refunded. Pure."""

from __future__ import annotations

from citadel import Aggregate, Command, DomainError, Event, InvalidCommand, NotFound, decides, evolves
from examples.shop.orders.contract import (
    CancelOrder,
    MarkOrderPaid,
    MarkOrderRefunded,
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderPaid,
    OrderRefunded,
)


class PlaceOrder(Command, name="orders.PlaceOrder"):
    """Internal: ``CreateOrder`` with the chosen id and the catalog's prices of the items (cents)."""

    order_id: str
    customer_id: str
    items: list[OrderItem]
    prices: dict[str, int]


MAX_QUANTITY = 10_000
"""The most copies of one item in an order."""


def order_total(items: list[OrderItem], prices: dict[str, int]) -> int:
    """Return the total in cents of ``items`` at ``prices``.

    Raises:
        InvalidCommand: no items, an item twice, a quantity below one, or an item without a price.
    """
    if not items:
        raise InvalidCommand("an order needs at least one item")
    seen: set[str] = set()
    for item in items:
        if item.content_id in seen:
            raise InvalidCommand(f"item {item.content_id} appears twice; order it once with a quantity")
        seen.add(item.content_id)
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise InvalidCommand(f"quantity of {item.content_id} must be 1 to {MAX_QUANTITY}, got {item.quantity}")
        if item.content_id not in prices:
            raise InvalidCommand(f"no such item: {item.content_id}")
    return sum(prices[item.content_id] * item.quantity for item in items)


class Order(Aggregate):
    status: str = "none"
    customer_id: str = ""
    items: list[OrderItem] = []

    @decides
    def place(self, command: PlaceOrder) -> list[Event]:
        if self.status != "none":
            raise DomainError(f"order {command.order_id} exists already")
        total = order_total(command.items, command.prices)
        return [
            OrderCreated(order_id=command.order_id, customer_id=command.customer_id, items=command.items, total=total)
        ]

    @decides
    def cancel(self, command: CancelOrder) -> list[Event]:
        self._require(command.order_id)
        if self.status != "created":
            raise DomainError(f"order {command.order_id} is {self.status}; only an unpaid order can be cancelled")
        return [OrderCancelled(order_id=command.order_id, customer_id=self.customer_id)]

    @decides
    def mark_paid(self, command: MarkOrderPaid) -> list[Event]:
        self._require(command.order_id)
        if self.status != "created":
            return []  # paid already, or cancelled: billing refunds a payment that comes too late
        return [OrderPaid(order_id=command.order_id, customer_id=self.customer_id, items=self.items)]

    @decides
    def mark_refunded(self, command: MarkOrderRefunded) -> list[Event]:
        self._require(command.order_id)
        if self.status != "paid":
            return []
        return [OrderRefunded(order_id=command.order_id, customer_id=self.customer_id, items=self.items)]

    def _require(self, order_id: str) -> None:
        if self.status == "none":
            raise NotFound(f"no order {order_id}")

    @evolves
    def was_created(self, event: OrderCreated) -> None:
        self.status, self.customer_id, self.items = "created", event.customer_id, event.items

    @evolves
    def was_cancelled(self, event: OrderCancelled) -> None:
        self.status = "cancelled"

    @evolves
    def was_paid(self, event: OrderPaid) -> None:
        self.status = "paid"

    @evolves
    def was_refunded(self, event: OrderRefunded) -> None:
        self.status = "refunded"


ORDER = Order.decider()
