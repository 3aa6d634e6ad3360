"""The content contract: publish items, look up prices, grant or revoke access, and reserve seats.

An item published with ``seats`` (a live workshop) has that many; other items are unlimited. Orders reserve
seats, confirm them on payment and release them; content answers each request with an event, a refusal too.
"""

from __future__ import annotations

import msgspec

from citadel import Command, Event, Query
from citadel.types import Id, Ids, Name, Text


class PublishContent(Command, name="content.PublishContent"):
    """Publish an item for sale at ``price`` cents."""

    title: Name
    body: Text
    price: int
    seats: int | None = None
    """How many can attend (a live workshop); None: digital content, unlimited."""
    hold_seconds: int = 900
    """How long a reservation holds its seats unpaid before a later reservation may take them."""


class GrantAccess(Command, name="content.GrantAccess", expose=False):
    """Give a user access to the items of an order (sent by orders when the order is paid)."""

    user_id: Id
    order_id: Id
    content_ids: Ids


class RevokeAccess(Command, name="content.RevokeAccess", expose=False):
    """Take back the access an order gave (sent by orders when the order is refunded)."""

    user_id: Id
    order_id: Id
    content_ids: Ids


class ReserveSeats(Command, name="content.ReserveSeats", expose=False):
    """Hold ``quantity`` seats for an order (sent by orders); answered by ``SeatsReserved`` or ``SeatsRefused``.

    ``at`` (seconds since the epoch) is when the order asked: holds expired by then are released first.
    """

    content_id: Id
    order_id: Id
    quantity: int
    at: float


class ConfirmSeats(Command, name="content.ConfirmSeats", expose=False):
    """The order is paid: its held seats are sold (nothing happens when it holds none)."""

    content_id: Id
    order_id: Id


class ReleaseSeats(Command, name="content.ReleaseSeats", expose=False):
    """The order ended unpaid, or was refunded: give its seats back (nothing happens when it has none)."""

    content_id: Id
    order_id: Id


class GetItem(Query, name="content.GetItem"):
    """An item's title, price and seats; ``NotFound`` if there is none."""

    content_id: Id


class GetAccess(Query, name="content.GetAccess"):
    """Whether a user may read an item."""

    user_id: Id
    content_id: Id


class GetPrices(Query, name="content.GetPrices"):
    """The current prices of the known items among ``content_ids``."""

    content_ids: Ids


class SeatsReserved(Event, name="content.SeatsReserved"):
    content_id: str
    order_id: str
    quantity: int
    seats_left: int
    expires_at: float


class SeatsRefused(Event, name="content.SeatsRefused"):
    content_id: str
    order_id: str
    quantity: int
    seats_left: int
    reason: str


class SeatsConfirmed(Event, name="content.SeatsConfirmed"):
    content_id: str
    order_id: str
    quantity: int


class SeatsReleased(Event, name="content.SeatsReleased"):
    """Seats given back: by the order (``expired`` False), or taken from a hold that outlived its time."""

    content_id: str
    order_id: str
    quantity: int
    seats_left: int
    expired: bool


class NewContent(msgspec.Struct, frozen=True, kw_only=True):
    """What ``PublishContent`` returns."""

    content_id: str


class ItemDetails(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetItem`` returns."""

    content_id: str
    title: str
    price: int
    seats: int | None = None
    """None for unlimited content."""
    seats_left: int | None = None


class AccessStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetAccess`` returns."""

    granted: bool


class PriceList(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetPrices`` returns: cents by content id, known ids only, and which of them have limited seats."""

    prices: dict[str, int]
    seated: list[str] = []
