"""Content's command and query handlers."""

from __future__ import annotations

import msgspec

from citadel import CommandContext, NotFound, QueryContext
from examples.shop.content.contract import (
    AccessStatus,
    ConfirmSeats,
    GetAccess,
    GetItem,
    GetPrices,
    GrantAccess,
    ItemDetails,
    NewContent,
    PriceList,
    PublishContent,
    ReleaseSeats,
    ReserveSeats,
    RevokeAccess,
)
from examples.shop.content.domain import ACCESS, ITEM, CreateItem
from examples.shop.content.projections import GRANTS, Catalog, access_key
from examples.shop.content.seats import SEATS


async def publish_content(command: PublishContent, ctx: CommandContext) -> NewContent:
    content_id = ctx.new_id()
    item = CreateItem(
        content_id=content_id,
        title=command.title,
        body=command.body,
        price=command.price,
        seats=command.seats,
        hold_seconds=command.hold_seconds,
    )
    await ctx.execute(ITEM, f"item-{content_id}", item)
    return NewContent(content_id=content_id)


async def grant_access(command: GrantAccess, ctx: CommandContext) -> None:
    await ctx.execute(ACCESS, f"access-{command.user_id}-{command.order_id}", command)


async def revoke_access(command: RevokeAccess, ctx: CommandContext) -> None:
    await ctx.execute(ACCESS, f"access-{command.user_id}-{command.order_id}", command)


async def seats_of_item(command: ReserveSeats | ConfirmSeats | ReleaseSeats, ctx: CommandContext) -> None:
    await ctx.execute(SEATS, f"item-{command.content_id}", command)


async def get_item(query: GetItem, ctx: QueryContext) -> ItemDetails:
    row = await ctx.view(Catalog.items).get(query.content_id)
    if row is None:
        raise NotFound(f"no item {query.content_id}")
    return msgspec.convert(row, ItemDetails, from_attributes=True)


async def reader_itself(message: GetAccess, ctx: QueryContext) -> str:
    """Whether a user may read an item is that user's business."""
    return message.user_id


async def get_access(query: GetAccess, ctx: QueryContext) -> AccessStatus:
    row = await ctx.view(GRANTS).get(access_key(query.user_id, query.content_id))
    return AccessStatus(granted=row is not None and row.get("grants", 0) > 0)


async def get_prices(query: GetPrices, ctx: QueryContext) -> PriceList:
    items = ctx.view(Catalog.items)
    prices: dict[str, int] = {}
    seated: list[str] = []
    for content_id in dict.fromkeys(query.content_ids):
        row = await items.get(content_id)
        if row is not None:
            prices[content_id] = row.price
            if row.seats is not None:
                seated.append(content_id)
    return PriceList(prices=prices, seated=seated)
