"""Two shops built from the very same module objects run side by side in one process, each on its own SQLite
store: every view of each answers with its own data only (views are bound per application)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from citadel import Application, NotFound
from citadel.testing import running
from examples.shop import analytics, billing, content, orders, users
from examples.shop.analytics.contract import GetRevenue, RevenueReport
from examples.shop.orders.contract import GetOrder
from examples.shop.users.contract import GetUser

from .shopping import order, pay, publish, register


async def buy(shop: Application, email: str, price: int) -> tuple[str, str]:
    """Register a customer, publish an item at ``price``, order it and pay; return the user and the order."""
    customer = await register(shop, email)
    created = await order(shop, customer, await publish(shop, price))
    await pay(shop, created.order_id)
    return customer, created.order_id


async def test_two_applications_of_the_same_modules_keep_their_views_apart(tmp_path: Path) -> None:
    modules = [users.module(), content.module(), orders.module(), billing.module(), analytics.module()]
    north, south = Application(modules), Application(modules)
    async with (
        running(north, store=f"sqlite:///{tmp_path / 'north.db'}"),
        running(south, store=f"sqlite:///{tmp_path / 'south.db'}"),
    ):
        (ada, ada_order), (bob, bob_order) = await asyncio.gather(
            buy(north, "ada@example.com", 500), buy(south, "bob@example.com", 300)
        )

        assert (await north.query(GetUser(user_id=ada))).email == "ada@example.com"
        assert (await south.query(GetUser(user_id=bob))).email == "bob@example.com"
        assert (await north.query(GetOrder(order_id=ada_order))).total == 500
        assert (await south.query(GetOrder(order_id=bob_order))).total == 300
        with pytest.raises(NotFound):
            await north.query(GetOrder(order_id=bob_order))
        with pytest.raises(NotFound):
            await south.query(GetOrder(order_id=ada_order))
        # The async projections of each shop follow its own log only.
        assert await north.query(GetRevenue()) == RevenueReport(paid_orders=1, revenue=500, refunded=0)
        assert await south.query(GetRevenue()) == RevenueReport(paid_orders=1, revenue=300, refunded=0)
