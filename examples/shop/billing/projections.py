"""The billing read model: each order's invoice and its status."""

from __future__ import annotations

import msgspec

from citadel import ProjectionContext, Projector, View
from examples.shop.billing.contract import InvoicePaid, InvoiceRefunded
from examples.shop.billing.domain import InvoiceOpened, InvoiceVoided


class InvoiceRow(msgspec.Struct, kw_only=True):
    invoice_id: str
    order_id: str
    amount: int
    status: str
    customer_id: str = ""


class Invoices(Projector):
    """Invoices keyed by order id (an order has at most one)."""

    invoices = View("invoices", InvoiceRow, indexes=("invoice_id",))

    def handle_invoiceopened(self, event: InvoiceOpened, ctx: ProjectionContext) -> None:
        ctx.view(self.invoices)[event.order_id] = InvoiceRow(
            invoice_id=event.invoice_id,
            order_id=event.order_id,
            amount=event.amount,
            status="open",
            customer_id=event.customer_id,
        )

    def handle_invoicepaid(self, event: InvoicePaid, ctx: ProjectionContext) -> None:
        ctx.view(self.invoices).merge(event.order_id, status="paid")

    def handle_invoicevoided(self, event: InvoiceVoided, ctx: ProjectionContext) -> None:
        ctx.view(self.invoices).merge(event.order_id, status="void")

    def handle_invoicerefunded(self, event: InvoiceRefunded, ctx: ProjectionContext) -> None:
        ctx.view(self.invoices).merge(event.order_id, status="refunded")
