"""Billing's handlers, and the process manager between orders and invoices."""

from __future__ import annotations

import msgspec

from citadel import NO_STREAM, CommandContext, NotFound, ProcessManager, QueryContext
from examples.shop.billing.contract import (
    GetInvoice,
    InvoicePaid,
    InvoiceRefunded,
    InvoiceSummary,
    PayInvoice,
    RefundInvoice,
)
from examples.shop.billing.domain import INVOICE, OpenInvoice, VoidInvoice, invoice_id_for
from examples.shop.billing.projections import Invoices
from examples.shop.orders.contract import (
    MarkOrderPaid,
    MarkOrderRefunded,
    OrderCancelled,
    OrderCreated,
    OrderRefused,
    OrderReserved,
)


async def open_invoice(command: OpenInvoice, ctx: CommandContext) -> None:
    # The invoice id derives from the order id and the stream must be new: however often the order is
    # replayed, it gets one invoice. It nearly always is new, so it is presumed so (no read); an existing
    # invoice refuses the append, and the second run, which reads it, decides no events: success.
    stream = f"invoice-{invoice_id_for(command.order_id)}"
    loaded = await ctx.load(INVOICE, stream, new=True)
    events = INVOICE.decide(command, loaded.state)
    if events:
        ctx.append(stream, list(events), NO_STREAM)


async def void_invoice(command: VoidInvoice, ctx: CommandContext) -> None:
    await ctx.execute(INVOICE, f"invoice-{command.invoice_id}", command)


async def pay_invoice(command: PayInvoice, ctx: CommandContext) -> None:
    await ctx.execute(INVOICE, f"invoice-{command.invoice_id}", command)


async def refund_invoice(command: RefundInvoice, ctx: CommandContext) -> None:
    await ctx.execute(INVOICE, f"invoice-{command.invoice_id}", command)


async def payer(message: PayInvoice | GetInvoice, ctx: QueryContext) -> str | None:
    """An invoice belongs to the customer who ordered (None when there is no such invoice)."""
    view = ctx.view(Invoices.invoices)
    if isinstance(message, GetInvoice):
        row = await view.get(message.order_id)
    else:
        found = await view.find(invoice_id=message.invoice_id, limit=1)
        row = found[0] if found else None
    return row.customer_id if row is not None else None


async def get_invoice(query: GetInvoice, ctx: QueryContext) -> InvoiceSummary:
    row = await ctx.view(Invoices.invoices).get(query.order_id)
    if row is None:
        raise NotFound(f"no invoice for order {query.order_id}")
    return msgspec.convert(row, InvoiceSummary, from_attributes=True)


invoicing = ProcessManager("billing.invoicing")


@invoicing.on(OrderCreated)
def bill_new_order(event: OrderCreated) -> OpenInvoice | None:
    if event.seated:
        return None  # billed once its seats are held (OrderReserved), never if they are refused
    return OpenInvoice(order_id=event.order_id, customer_id=event.customer_id, amount=event.total)


@invoicing.on(OrderReserved)
def bill_reserved_order(event: OrderReserved) -> OpenInvoice:
    return OpenInvoice(order_id=event.order_id, customer_id=event.customer_id, amount=event.total)


@invoicing.on(OrderCancelled, OrderRefused)
def void_ended_order(event: OrderCancelled | OrderRefused) -> VoidInvoice | None:
    if event.previous_status == "reserving":
        return None  # never billed
    return VoidInvoice(invoice_id=invoice_id_for(event.order_id))


@invoicing.on(InvoicePaid)
def mark_order_paid(event: InvoicePaid) -> MarkOrderPaid:
    return MarkOrderPaid(order_id=event.order_id)


@invoicing.on(InvoiceRefunded)
def mark_order_refunded(event: InvoiceRefunded) -> MarkOrderRefunded:
    return MarkOrderRefunded(order_id=event.order_id)
