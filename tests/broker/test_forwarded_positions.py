"""The position a command returns names the service whose log holds its events, even when its handler asked
another service something on the way (a forwarded query writes nothing, and must not take the receipt)."""

from __future__ import annotations

from pathlib import Path

from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from examples.shop import build_app
from examples.shop.content.contract import PublishContent
from examples.shop.orders.contract import CreateOrder, OrderItem
from examples.shop.users.contract import RegisterUser


async def test_a_command_that_asked_another_service_returns_a_position_in_its_own_modules_log(
    broker_url: str, tmp_path: Path, keys: ServiceKeys
) -> None:
    users = build_app(store=f"sqlite:///{tmp_path / 'users.db'}", secure=False)
    shop = build_app(store=f"sqlite:///{tmp_path / 'shop.db'}", secure=False)
    await users.start(modules=["users"], broker=NatsBroker(broker_url, keys=keys))
    try:
        await shop.start(
            modules=["content", "orders", "billing", "analytics"], broker=NatsBroker(broker_url, keys=keys)
        )
        try:
            user = await shop.dispatch(RegisterUser(email="ada@example.com", name="Ada"))  # forwarded to users
            item = await shop.dispatch(PublishContent(title="Notes", body="...", price=500))
            placed = await shop.execute(
                CreateOrder(customer_id=user.user_id, items=[OrderItem(content_id=item.content_id, quantity=1)])
            )  # its handler asks users' GetUser over the broker
            assert placed.token == f"orders:{placed.position}"
            (written,) = await shop.store.read_all(placed.position, 1)
            assert written.type == "orders.OrderCreated"
        finally:
            await shop.stop()
    finally:
        await users.stop()
