"""The billing contract: pay and refund invoices, look them up, and the events payments emit."""

from __future__ import annotations

import msgspec

from citadel import Command, Event, Query
from citadel.types import Id


class PayInvoice(Command, name="billing.PayInvoice"):
    """Pay an open invoice; ``amount`` (cents) must be the invoice's."""

    invoice_id: Id
    amount: int


class RefundInvoice(Command, name="billing.RefundInvoice"):
    """Refund a paid invoice."""

    invoice_id: Id


class GetInvoice(Query, name="billing.GetInvoice"):
    """The invoice of an order; ``NotFound`` until billing has opened it."""

    order_id: Id


class InvoicePaid(Event, name="billing.InvoicePaid"):
    invoice_id: str
    order_id: str
    customer_id: str
    amount: int


class InvoiceRefunded(Event, name="billing.InvoiceRefunded"):
    invoice_id: str
    order_id: str
    customer_id: str
    amount: int


class InvoiceSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetInvoice`` returns; ``status`` is open, paid, void or refunded."""

    invoice_id: str
    order_id: str
    amount: int
    status: str
