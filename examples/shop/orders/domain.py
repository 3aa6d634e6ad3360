"""An order's stream: created at catalog prices (reserving its seats first, if it has any), then paid,
cancelled, refused or refunded. Pure.

The order's decisions about seats are events too (``SeatRequest``), which the handlers append to the item's
``seating-{content_id}`` stream rather than to the order's: see ``examples.shop.orders.seating``.
"""

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
    OrderRefused,
    OrderReserved,
)


class PlaceOrder(Command, name="orders.PlaceOrder"):
    """Internal: ``CreateOrder`` with the chosen id and the catalog's prices of the items (cents)."""

    order_id: str
    customer_id: str
    items: list[OrderItem]
    prices: dict[str, int]
    seated: list[str] = []
    """The ids among ``items`` whose seats are limited (the catalog's ``PriceList.seated``)."""


class MarkSeatsReserved(Command, name="orders.MarkSeatsReserved"):
    """Internal: content holds the order's seats of one item."""

    order_id: str
    content_id: str


class RefuseOrder(Command, name="orders.RefuseOrder"):
    """Internal: the order cannot have its seats (sold out, or its hold expired before payment)."""

    order_id: str
    reason: str


class SeatRequest(Event):
    """What an order asks of an item's seats; appended to ``seating-{content_id}``, in the order asked."""

    order_id: str
    content_id: str


class SeatsRequested(SeatRequest, name="orders.SeatsRequested"):
    quantity: int


class SeatsPaidFor(SeatRequest, name="orders.SeatsPaidFor"):
    pass


class SeatsGivenBack(SeatRequest, name="orders.SeatsGivenBack"):
    pass


class OrderSeatsHeld(Event, name="orders.OrderSeatsHeld"):
    """Content holds the order's seats of one item (others may still be awaited)."""

    order_id: str
    content_id: str


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


UNPAID = ("reserving", "created")


class Order(Aggregate):
    status: str = "none"
    order_id: str = ""
    customer_id: str = ""
    items: list[OrderItem] = []
    total: int = 0
    seated: list[str] = []
    awaiting: list[str] = []
    """The seated items whose seats content has not held yet."""

    @decides
    def place(self, command: PlaceOrder) -> list[Event]:
        if self.status != "none":
            raise DomainError(f"order {command.order_id} exists already")
        total = order_total(command.items, command.prices)
        seated = [item for item in command.items if item.content_id in command.seated]
        created = OrderCreated(
            order_id=command.order_id,
            customer_id=command.customer_id,
            items=command.items,
            total=total,
            seated=[item.content_id for item in seated],
        )
        requests = [
            SeatsRequested(order_id=command.order_id, content_id=item.content_id, quantity=item.quantity)
            for item in seated
        ]
        return [created, *requests]

    @decides
    def cancel(self, command: CancelOrder) -> list[Event]:
        self._require(command.order_id)
        if self.status not in UNPAID:
            raise DomainError(f"order {command.order_id} is {self.status}; only an unpaid order can be cancelled")
        cancelled = OrderCancelled(order_id=command.order_id, customer_id=self.customer_id, previous_status=self.status)
        return [cancelled, *self._seat_requests(SeatsGivenBack)]

    @decides
    def mark_seats_reserved(self, command: MarkSeatsReserved) -> list[Event]:
        self._require(command.order_id)
        if self.status != "reserving" or command.content_id not in self.awaiting:
            return []  # held already, or the order ended meanwhile (its seats are given back)
        held = OrderSeatsHeld(order_id=command.order_id, content_id=command.content_id)
        if self.awaiting != [command.content_id]:
            return [held]
        return [held, OrderReserved(order_id=command.order_id, customer_id=self.customer_id, total=self.total)]

    @decides
    def refuse(self, command: RefuseOrder) -> list[Event]:
        self._require(command.order_id)
        if self.status not in (*UNPAID, "paid"):
            return []  # ended already
        refused = OrderRefused(
            order_id=command.order_id,
            customer_id=self.customer_id,
            items=self.items,
            reason=command.reason,
            previous_status=self.status,
        )
        return [refused, *self._seat_requests(SeatsGivenBack)]

    @decides
    def mark_paid(self, command: MarkOrderPaid) -> list[Event]:
        self._require(command.order_id)
        if self.status != "created":
            return []  # paid already, or cancelled: billing refunds a payment that comes too late
        paid = OrderPaid(order_id=command.order_id, customer_id=self.customer_id, items=self.items)
        return [paid, *self._seat_requests(SeatsPaidFor)]

    @decides
    def mark_refunded(self, command: MarkOrderRefunded) -> list[Event]:
        self._require(command.order_id)
        if self.status != "paid":
            return []
        refunded = OrderRefunded(order_id=command.order_id, customer_id=self.customer_id, items=self.items)
        return [refunded, *self._seat_requests(SeatsGivenBack)]

    def _seat_requests(self, kind: type[SeatsPaidFor | SeatsGivenBack]) -> list[Event]:
        return [kind(order_id=self.order_id, content_id=content_id) for content_id in self.seated]

    def _require(self, order_id: str) -> None:
        if self.status == "none":
            raise NotFound(f"no order {order_id}")

    @evolves
    def was_created(self, event: OrderCreated) -> None:
        self.status = "reserving" if event.seated else "created"
        self.order_id, self.customer_id, self.items = event.order_id, event.customer_id, event.items
        self.total, self.seated, self.awaiting = event.total, event.seated, list(event.seated)

    @evolves
    def seats_were_held(self, event: OrderSeatsHeld) -> None:
        self.awaiting = [c for c in self.awaiting if c != event.content_id]

    @evolves
    def was_reserved(self, event: OrderReserved) -> None:
        self.status = "created"

    @evolves
    def was_refused(self, event: OrderRefused) -> None:
        self.status = "refused"

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
