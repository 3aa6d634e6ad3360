"""The content contract: publish items, look up prices, and grant or revoke access to them."""

from __future__ import annotations

import msgspec

from citadel import Command, Query
from citadel.types import Id, Ids, Name, Text


class PublishContent(Command, name="content.PublishContent"):
    """Publish an item for sale at ``price`` cents."""

    title: Name
    body: Text
    price: int


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


class GetItem(Query, name="content.GetItem"):
    """An item's title and price; ``NotFound`` if there is none."""

    content_id: Id


class GetAccess(Query, name="content.GetAccess"):
    """Whether a user may read an item."""

    user_id: Id
    content_id: Id


class GetPrices(Query, name="content.GetPrices"):
    """The current prices of the known items among ``content_ids``."""

    content_ids: Ids


class NewContent(msgspec.Struct, frozen=True, kw_only=True):
    """What ``PublishContent`` returns."""

    content_id: str


class ItemDetails(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetItem`` returns."""

    content_id: str
    title: str
    price: int


class AccessStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetAccess`` returns."""

    granted: bool


class PriceList(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetPrices`` returns: cents by content id, known ids only."""

    prices: dict[str, int]
