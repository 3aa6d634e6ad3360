"""An invoice's stream: one per order, opened, then paid, void or refunded. Pure."""

from __future__ import annotations

import uuid

from citadel import Aggregate, Command, DomainError, Event, InvalidCommand, NotFound, decides, evolves
from examples.shop.billing.contract import InvoicePaid, InvoiceRefunded, PayInvoice, RefundInvoice

INVOICES_NAMESPACE = uuid.UUID("5b0f8a8e-7d0c-4c8e-9a51-3f6f0b9d2c41")


def invoice_id_for(order_id: str) -> str:
    """Return the id of an order's invoice: always the same for one order, so an order has one invoice."""
    return str(uuid.uuid5(INVOICES_NAMESPACE, order_id))


class OpenInvoice(Command, name="billing.OpenInvoice"):
    """Internal: bill a new order (sent by billing's process manager)."""

    order_id: str
    customer_id: str
    amount: int


class VoidInvoice(Command, name="billing.VoidInvoice"):
    """Internal: the order was cancelled; void the invoice, or refund it if it was paid meanwhile."""

    invoice_id: str


class InvoiceOpened(Event, name="billing.InvoiceOpened"):
    invoice_id: str
    order_id: str
    customer_id: str
    amount: int


class InvoiceVoided(Event, name="billing.InvoiceVoided"):
    invoice_id: str
    order_id: str


class Invoice(Aggregate):
    status: str = "none"
    invoice_id: str = ""
    order_id: str = ""
    customer_id: str = ""
    amount: int = 0

    @decides
    def open(self, command: OpenInvoice) -> list[Event]:
        if self.status != "none":
            return []  # the order has its invoice already
        invoice_id = invoice_id_for(command.order_id)
        return [
            InvoiceOpened(
                invoice_id=invoice_id, order_id=command.order_id, customer_id=command.customer_id, amount=command.amount
            )
        ]

    @decides
    def pay(self, command: PayInvoice) -> list[Event]:
        self._require(command.invoice_id)
        if self.status != "open":
            raise DomainError(f"invoice {command.invoice_id} is {self.status}; only an open invoice can be paid")
        if command.amount != self.amount:
            raise InvalidCommand(f"invoice {command.invoice_id} is for {self.amount} cents, not {command.amount}")
        return [
            InvoicePaid(
                invoice_id=self.invoice_id, order_id=self.order_id, customer_id=self.customer_id, amount=self.amount
            )
        ]

    @decides
    def refund(self, command: RefundInvoice) -> list[Event]:
        self._require(command.invoice_id)
        if self.status != "paid":
            raise DomainError(f"invoice {command.invoice_id} is {self.status}; only a paid invoice can be refunded")
        return [self._refunded()]

    @decides
    def void(self, command: VoidInvoice) -> list[Event]:
        self._require(command.invoice_id)
        if self.status == "open":
            return [InvoiceVoided(invoice_id=self.invoice_id, order_id=self.order_id)]
        if self.status == "paid":
            return [self._refunded()]  # paid just before the order was cancelled: give the money back
        return []

    def _refunded(self) -> InvoiceRefunded:
        return InvoiceRefunded(
            invoice_id=self.invoice_id, order_id=self.order_id, customer_id=self.customer_id, amount=self.amount
        )

    def _require(self, invoice_id: str) -> None:
        if self.status == "none":
            raise NotFound(f"no invoice {invoice_id}")

    @evolves
    def was_opened(self, event: InvoiceOpened) -> None:
        self.status, self.invoice_id, self.order_id = "open", event.invoice_id, event.order_id
        self.customer_id, self.amount = event.customer_id, event.amount

    @evolves
    def was_paid(self, event: InvoicePaid) -> None:
        self.status = "paid"

    @evolves
    def was_voided(self, event: InvoiceVoided) -> None:
        self.status = "void"

    @evolves
    def was_refunded(self, event: InvoiceRefunded) -> None:
        self.status = "refunded"


INVOICE = Invoice.decider()
