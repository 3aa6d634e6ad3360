"""The content read models: the catalog with the seats left, and who may read what."""

from __future__ import annotations

import msgspec

from citadel import ProjectionContext, Projector, View
from examples.shop.content.contract import SeatsReleased, SeatsReserved
from examples.shop.content.domain import AccessGranted, AccessRevoked, ContentPublished


class ItemRow(msgspec.Struct, kw_only=True):
    content_id: str
    title: str
    body: str
    price: int
    seats: int | None = None
    seats_left: int | None = None


class Catalog(Projector):
    """Every published item, by content id, with its seats left when they are limited."""

    items = View("items", ItemRow)

    def handle_contentpublished(self, event: ContentPublished, ctx: ProjectionContext) -> None:
        ctx.view(self.items)[event.content_id] = ItemRow(
            content_id=event.content_id,
            title=event.title,
            body=event.body,
            price=event.price,
            seats=event.seats,
            seats_left=event.seats,
        )

    def handle_seatsreserved(self, event: SeatsReserved, ctx: ProjectionContext) -> None:
        ctx.view(self.items).merge(event.content_id, seats_left=event.seats_left)

    def handle_seatsreleased(self, event: SeatsReleased, ctx: ProjectionContext) -> None:
        ctx.view(self.items).merge(event.content_id, seats_left=event.seats_left)


# Keyed "{user_id}:{content_id}"; "grants" counts the orders currently giving that access.
GRANTS = View[dict[str, int]]("access")


def access_key(user_id: str, content_id: str) -> str:
    """Return the key of a user's access to an item in the ``access`` view."""
    return f"{user_id}:{content_id}"


class Readers(Projector):
    """Who may read which item."""

    def __init__(self) -> None:
        super().__init__(views=[GRANTS])

    def handle_accessgranted(self, event: AccessGranted, ctx: ProjectionContext) -> None:
        for content_id in event.content_ids:
            ctx.view(GRANTS).increment(access_key(event.user_id, content_id), "grants", 1)

    def handle_accessrevoked(self, event: AccessRevoked, ctx: ProjectionContext) -> None:
        for content_id in event.content_ids:
            ctx.view(GRANTS).increment(access_key(event.user_id, content_id), "grants", -1)
