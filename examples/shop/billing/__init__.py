"""Billing: one invoice per order, paid or refunded; payments and refunds are reported back to orders."""

from __future__ import annotations

from citadel import Module
from examples.shop.billing import contract
from examples.shop.billing.contract import GetInvoice, PayInvoice, RefundInvoice
from examples.shop.billing.domain import InvoiceOpened, InvoiceVoided, OpenInvoice, VoidInvoice
from examples.shop.billing.handlers import (
    get_invoice,
    invoicing,
    open_invoice,
    pay_invoice,
    payer,
    refund_invoice,
    void_invoice,
)
from examples.shop.billing.projections import Invoices


def module() -> Module:
    """Return a new billing module (an application binds its projections, so build one per application)."""
    return Module(
        "billing",
        package=__name__,
        contract=contract,
        commands={
            OpenInvoice: open_invoice,
            VoidInvoice: void_invoice,
            PayInvoice: pay_invoice,
            RefundInvoice: refund_invoice,
        },
        queries={GetInvoice: get_invoice},
        owners={PayInvoice: payer, GetInvoice: payer},
        events=[InvoiceOpened, InvoiceVoided],
        projections=[Invoices()],
        process_managers=[invoicing],
        depends_on=["orders"],
    )
