"""Content: the catalog of items for sale, the seats of live ones, and who may read them."""

from __future__ import annotations

from citadel import Module
from examples.shop.content import contract
from examples.shop.content.contract import (
    ConfirmSeats,
    GetAccess,
    GetItem,
    GetPrices,
    GrantAccess,
    PublishContent,
    ReleaseSeats,
    ReserveSeats,
    RevokeAccess,
)
from examples.shop.content.domain import AccessGranted, AccessRevoked, ContentPublished
from examples.shop.content.handlers import (
    get_access,
    get_item,
    get_prices,
    grant_access,
    publish_content,
    reader_itself,
    revoke_access,
    seats_of_item,
)
from examples.shop.content.projections import Catalog, Readers


def module() -> Module:
    """Return a new content module (an application binds its projections, so build one per application)."""
    return Module(
        "content",
        package=__name__,
        contract=contract,
        commands={
            PublishContent: publish_content,
            GrantAccess: grant_access,
            RevokeAccess: revoke_access,
            ReserveSeats: seats_of_item,
            ConfirmSeats: seats_of_item,
            ReleaseSeats: seats_of_item,
        },
        queries={GetItem: get_item, GetAccess: get_access, GetPrices: get_prices},
        owners={GetAccess: reader_itself},
        events=[ContentPublished, AccessGranted, AccessRevoked],
        projections=[Catalog(), Readers()],
    )
