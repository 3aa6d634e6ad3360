"""Steps of the shop's flows, shared by its application tests."""

from __future__ import annotations

import citadel.testing
from citadel import Application
from examples.shop.billing.contract import GetInvoice, InvoiceSummary, PayInvoice
from examples.shop.content.contract import GetAccess, PublishContent
from examples.shop.orders.contract import CreateOrder, NewOrder, OrderItem
from examples.shop.users.contract import RegisterUser


async def settle(app: Application) -> None:
    """Wait until every process manager and async projection has processed the whole log."""
    await citadel.testing.settle(app)


async def register(app: Application, email: str = "ada@example.com") -> str:
    user = await app.dispatch(RegisterUser(email=email, name="Ada"))
    return str(user.user_id)


async def publish(app: Application, price: int) -> str:
    item = await app.dispatch(PublishContent(title=f"Item at {price}", body="...", price=price))
    return str(item.content_id)


async def order(app: Application, customer_id: str, *content_ids: str, quantity: int = 1) -> NewOrder:
    items = [OrderItem(content_id=c, quantity=quantity) for c in content_ids]
    created: NewOrder = await app.dispatch(CreateOrder(customer_id=customer_id, items=items))
    return created


async def invoice(app: Application, order_id: str) -> InvoiceSummary:
    """Return the order's invoice once billing has opened it."""
    await settle(app)
    found: InvoiceSummary = await app.query(GetInvoice(order_id=order_id))
    return found


async def pay(app: Application, order_id: str) -> InvoiceSummary:
    """Pay the order's invoice in full and wait until everything downstream has reacted."""
    bill = await invoice(app, order_id)
    await app.dispatch(PayInvoice(invoice_id=bill.invoice_id, amount=bill.amount))
    await settle(app)
    return bill


async def can_read(app: Application, user_id: str, content_id: str) -> bool:
    status = await app.query(GetAccess(user_id=user_id, content_id=content_id))
    return bool(status.granted)
