"""Content streams: an item's publication (its seats are in ``seats``), and a user's access granted per order.
Pure."""

from __future__ import annotations

from citadel import Aggregate, Command, DomainError, Event, InvalidCommand, decides, evolves
from examples.shop.content.contract import GrantAccess, RevokeAccess

MAX_PRICE = 1_000_000_000_00
"""The highest price in cents (a billion): totals stay far inside 64-bit integers."""
MAX_SEATS = 100_000
MAX_HOLD_SECONDS = 7 * 24 * 3600


class CreateItem(Command, name="content.CreateItem"):
    """Internal: ``PublishContent`` with the id the handler chose."""

    content_id: str
    title: str
    body: str
    price: int
    seats: int | None = None
    hold_seconds: int = 0


class ContentPublished(Event, name="content.ContentPublished"):
    content_id: str
    title: str
    body: str
    price: int
    seats: int | None = None
    hold_seconds: int = 0


class AccessGranted(Event, name="content.AccessGranted"):
    user_id: str
    order_id: str
    content_ids: list[str]


class AccessRevoked(Event, name="content.AccessRevoked"):
    user_id: str
    order_id: str
    content_ids: list[str]


class Item(Aggregate):
    published: bool = False

    @decides
    def create(self, command: CreateItem) -> list[Event]:
        if self.published:
            raise DomainError(f"item {command.content_id} is already published")
        if not command.title.strip():
            raise InvalidCommand("an item needs a title")
        if not 0 <= command.price <= MAX_PRICE:
            raise InvalidCommand(f"a price is from 0 to {MAX_PRICE} cents, got {command.price}")
        if command.seats is None:
            return [
                ContentPublished(
                    content_id=command.content_id, title=command.title.strip(), body=command.body, price=command.price
                )
            ]
        if not 1 <= command.seats <= MAX_SEATS:
            raise InvalidCommand(f"seats are from 1 to {MAX_SEATS}, got {command.seats}")
        if not 0 <= command.hold_seconds <= MAX_HOLD_SECONDS:
            raise InvalidCommand(f"a hold lasts 0 to {MAX_HOLD_SECONDS} seconds, got {command.hold_seconds}")
        published = ContentPublished(
            content_id=command.content_id,
            title=command.title.strip(),
            body=command.body,
            price=command.price,
            seats=command.seats,
            hold_seconds=command.hold_seconds,
        )
        return [published]

    @evolves
    def was_published(self, event: ContentPublished) -> None:
        self.published = True


class Access(Aggregate):
    """The access one order gave one user (a stream per order: payments of many orders of one customer at
    once must not contend for one stream, and no rule spans orders)."""

    orders: dict[str, list[str]] = {}

    @decides
    def grant(self, command: GrantAccess) -> list[Event]:
        if command.order_id in self.orders or not command.content_ids:
            return []  # granted already: a redelivered grant changes nothing
        content_ids = list(dict.fromkeys(command.content_ids))
        return [AccessGranted(user_id=command.user_id, order_id=command.order_id, content_ids=content_ids)]

    @decides
    def revoke(self, command: RevokeAccess) -> list[Event]:
        granted = self.orders.get(command.order_id, [])
        content_ids = [c for c in dict.fromkeys(command.content_ids) if c in granted]
        if not content_ids:
            return []  # nothing of these was granted by this order (or it was revoked already)
        return [AccessRevoked(user_id=command.user_id, order_id=command.order_id, content_ids=content_ids)]

    @evolves
    def was_granted(self, event: AccessGranted) -> None:
        self.orders[event.order_id] = event.content_ids

    @evolves
    def was_revoked(self, event: AccessRevoked) -> None:
        self.orders[event.order_id] = [c for c in self.orders[event.order_id] if c not in event.content_ids]


ITEM = Item.decider()
ACCESS = Access.decider()
