"""In-process access to a shop's store for the command-line tests: seed it, add to it, read its views."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citadel import Application
from citadel.security.encryption import Keyring, MasterKeys
from citadel.testing import settle
from examples.shop import build_app
from examples.shop.analytics.contract import GetOrdersByStatus, GetRevenue
from examples.shop.billing.contract import GetInvoice, PayInvoice
from examples.shop.content.contract import GetAccess, GetItem, PublishContent
from examples.shop.orders.contract import CreateOrder, GetOrder, OrderItem
from examples.shop.users.contract import ForgetUser, GetUser, RegisterUser


@dataclass(frozen=True)
class Shop:
    """A shop's store on disk, and the ids of what was seeded into it."""

    url: str
    keys: Path
    """The master key file its payloads are sealed under (the command line reads it as ``master_key_file``)."""
    user_id: str
    content_id: str
    order_id: str


def shop_on(url: str, keys: Path) -> Application:
    """The shop on ``url``, sealing and opening payloads with the master keys in ``keys``."""
    return build_app(store=url, secure=False, keyring=Keyring(MasterKeys.load(keys)))


async def start(app: Application, *, consumers: bool) -> None:
    """Start ``app``, with or without its consumers."""
    await app.start(consumers=consumers)


async def seed(url: str, keys: Path, *, consumers: bool = True) -> Shop:
    """Register a user, publish an item, order it and (when ``consumers`` run) pay it and let everything settle.

    Without consumers, billing never opens the invoice and analytics' async projections stay behind the head.
    """
    app = shop_on(url, keys)
    await start(app, consumers=consumers)
    try:
        user = await app.dispatch(RegisterUser(email="ada@example.com", name="Ada"))
        item = await app.dispatch(PublishContent(title="Notes", body="...", price=500))
        order = await app.dispatch(
            CreateOrder(customer_id=user.user_id, items=[OrderItem(content_id=item.content_id, quantity=2)])
        )
        if consumers:
            await settle(app)
            invoice = await app.query(GetInvoice(order_id=order.order_id))
            await app.dispatch(PayInvoice(invoice_id=invoice.invoice_id, amount=invoice.amount))
            await settle(app)
    finally:
        await app.stop()
    return Shop(url, keys, user.user_id, item.content_id, order.order_id)


async def register(shop: Shop, email: str) -> None:
    """Register one more user (appends one ``users.UserRegistered`` event)."""
    app = shop_on(shop.url, shop.keys)
    await app.start(consumers=False)
    try:
        await app.dispatch(RegisterUser(email=email, name="Grace"))
    finally:
        await app.stop()


async def fall_behind(shop: Shop, emails: list[str]) -> None:
    """With no consumer running, register a user per email, then forget the seeded user (her registration is
    shredded): one event each, which every async consumer is then behind."""
    app = shop_on(shop.url, shop.keys)
    await start(app, consumers=False)
    try:
        for email in emails:
            await app.dispatch(RegisterUser(email=email, name="Grace"))
        await app.dispatch(ForgetUser(user_id=shop.user_id))
        await settle(app)  # no consumer runs: this waits until subscribers can read the events (PostgreSQL)
    finally:
        await app.stop()


async def log_positions(shop: Shop) -> list[int]:
    """Every position of the shop's log, in order (not dense on PostgreSQL)."""
    app = shop_on(shop.url, shop.keys)
    await app.start(consumers=False)
    try:
        return [record.position for record in await app.store.read_all(1, 10_000)]
    finally:
        await app.stop()


async def views(shop: Shop) -> dict[str, Any]:
    """Every query answer about what was seeded, read from the views without running any consumer."""
    app = shop_on(shop.url, shop.keys)
    await app.start(consumers=False)
    try:
        return {
            "revenue": await app.query(GetRevenue()),
            "statuses": await app.query(GetOrdersByStatus()),
            "user": await app.query(GetUser(user_id=shop.user_id)),
            "item": await app.query(GetItem(content_id=shop.content_id)),
            "access": await app.query(GetAccess(user_id=shop.user_id, content_id=shop.content_id)),
            "order": await app.query(GetOrder(order_id=shop.order_id)),
            "invoice": await app.query(GetInvoice(order_id=shop.order_id)),
        }
    finally:
        await app.stop()
