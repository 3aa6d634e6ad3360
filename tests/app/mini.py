"""A three-module application for the framework's own tests: orders, billing (reacts to orders), analytics."""

from __future__ import annotations

from typing import Any

import msgspec

from citadel import (
    NO_STREAM,
    Aggregate,
    Application,
    Command,
    CommandContext,
    DispatchContext,
    DomainError,
    Event,
    Module,
    NotFound,
    ProcessManager,
    ProjectionContext,
    Projector,
    Query,
    QueryContext,
    View,
    decides,
    evolves,
)

# -- orders ----------------------------------------------------------------------------------------------


class PlaceOrder(Command, name="orders.PlaceOrder"):
    customer: str
    amount: int


class CancelOrder(Command, name="orders.CancelOrder"):
    order_id: str


class GetOrder(Query, name="orders.GetOrder"):
    order_id: str


class OrderPlaced(Event, name="orders.OrderPlaced"):
    order_id: str
    customer: str
    amount: int


class OrderCancelled(Event, name="orders.OrderCancelled"):
    order_id: str


class OrderRow(msgspec.Struct):
    order_id: str
    customer: str
    amount: int
    status: str


class Order(Aggregate):
    status: str = "new"

    @decides
    def cancel(self, command: CancelOrder) -> list[Event]:
        if self.status == "new":
            raise NotFound(f"no order {command.order_id}")
        if self.status != "placed":
            raise DomainError(f"order is {self.status}")
        return [OrderCancelled(order_id=command.order_id)]

    @evolves
    def placed(self, event: OrderPlaced) -> None:
        self.status = "placed"

    @evolves
    def cancelled(self, event: OrderCancelled) -> None:
        self.status = "cancelled"


ORDER = Order.decider()


class OrderRows(Projector):
    orders = View("orders", OrderRow, indexes=("customer",))

    def handle_orderplaced(self, event: OrderPlaced, ctx: ProjectionContext) -> None:
        ctx.view(self.orders)[event.order_id] = OrderRow(event.order_id, event.customer, event.amount, "placed")

    def handle_ordercancelled(self, event: OrderCancelled, ctx: ProjectionContext) -> None:
        ctx.view(self.orders).merge(event.order_id, status="cancelled")


async def place_order(command: PlaceOrder, ctx: CommandContext) -> dict[str, Any]:
    order_id = ctx.new_id()
    event = OrderPlaced(order_id=order_id, customer=command.customer, amount=command.amount)
    ctx.append(f"order-{order_id}", [event], NO_STREAM)
    return {"order_id": order_id}


async def cancel_order(command: CancelOrder, ctx: CommandContext) -> None:
    await ctx.execute(ORDER, f"order-{command.order_id}", command)


async def get_order(query: GetOrder, ctx: QueryContext) -> OrderRow:
    row: OrderRow | None = await ctx.view(OrderRows.orders).get(query.order_id)
    if row is None:
        raise NotFound(f"no order {query.order_id}")
    return row


# -- billing ---------------------------------------------------------------------------------------------


class OpenInvoice(Command, name="billing.OpenInvoice"):  # internal: only billing's process manager sends it
    order_id: str
    amount: int


class PayInvoice(Command, name="billing.PayInvoice"):
    order_id: str
    amount: int


class GetInvoice(Query, name="billing.GetInvoice"):
    order_id: str


class InvoiceOpened(Event, name="billing.InvoiceOpened"):
    order_id: str
    amount: int


class InvoicePaid(Event, name="billing.InvoicePaid"):
    order_id: str
    amount: int


class Invoice(Aggregate):
    status: str = "none"
    amount: int = 0

    @decides
    def open(self, command: OpenInvoice) -> list[Event]:
        if self.status != "none":
            raise DomainError("invoice already open")
        return [InvoiceOpened(order_id=command.order_id, amount=command.amount)]

    @decides
    def pay(self, command: PayInvoice) -> list[Event]:
        if self.status == "none":
            raise NotFound("no invoice")
        if self.status == "paid":
            raise DomainError("invoice already paid")
        if command.amount != self.amount:
            raise DomainError("wrong amount")
        return [InvoicePaid(order_id=command.order_id, amount=command.amount)]

    @evolves
    def opened(self, event: InvoiceOpened) -> None:
        self.status, self.amount = "open", event.amount

    @evolves
    def paid(self, event: InvoicePaid) -> None:
        self.status = "paid"


INVOICE = Invoice.decider(snapshot_every=3)
INVOICES = View("invoices")
invoice_rows = Projector("billing.invoices", views=[INVOICES])


@invoice_rows.on(InvoiceOpened)
def _opened(event: InvoiceOpened, ctx: Any) -> None:
    ctx.view(INVOICES).put(event.order_id, {"amount": event.amount, "status": "open"})


@invoice_rows.on(InvoicePaid)
def _paid(event: InvoicePaid, ctx: Any) -> None:
    ctx.view(INVOICES).merge(event.order_id, status="paid")


open_invoices = ProcessManager("billing.open_invoices")


@open_invoices.on(OrderPlaced)
def _open_invoice(event: OrderPlaced) -> OpenInvoice:
    return OpenInvoice(order_id=event.order_id, amount=event.amount)


async def open_invoice(command: OpenInvoice, ctx: CommandContext) -> None:
    await ctx.execute(INVOICE, f"invoice-{command.order_id}", command)


async def pay_invoice(command: PayInvoice, ctx: CommandContext) -> dict[str, str]:
    await ctx.execute(INVOICE, f"invoice-{command.order_id}", command)
    return {"status": "paid"}


async def get_invoice(query: GetInvoice, ctx: QueryContext) -> dict[str, Any]:
    row: dict[str, Any] | None = await ctx.view(INVOICES).get(query.order_id)
    if row is None:
        raise NotFound(f"no invoice for order {query.order_id}")
    return row


# -- analytics -------------------------------------------------------------------------------------------


class GetRevenue(Query, name="analytics.GetRevenue"):
    pass


REVENUE = View("revenue")
revenue = Projector("analytics.revenue", views=[REVENUE], inline=False)


@revenue.on(OrderPlaced)
def _placed(event: OrderPlaced, ctx: Any) -> None:
    ctx.view(REVENUE).increment("all", "orders")


@revenue.on(InvoicePaid)
def _revenue_paid(event: InvoicePaid, ctx: Any) -> None:
    ctx.view(REVENUE).increment("all", "paid", event.amount)


async def get_revenue(query: GetRevenue, ctx: QueryContext) -> dict[str, Any]:
    return await ctx.view(REVENUE).get("all") or {}


def build(**options: Any) -> Application:
    """A fresh application (projectors and views are bound per application, so build one per test)."""
    orders = Module(
        "orders",
        contract=[PlaceOrder, CancelOrder, GetOrder, OrderPlaced, OrderCancelled],
        commands={PlaceOrder: place_order, CancelOrder: cancel_order},
        queries={GetOrder: get_order},
        projections=[OrderRows()],
    )
    billing = Module(
        "billing",
        contract=[PayInvoice, GetInvoice, InvoicePaid],
        commands={OpenInvoice: open_invoice, PayInvoice: pay_invoice},
        queries={GetInvoice: get_invoice},
        events=[InvoiceOpened],
        projections=[invoice_rows],
        process_managers=[open_invoices],
        depends_on=["orders"],
    )
    analytics = Module(
        "analytics",
        contract=[GetRevenue],
        queries={GetRevenue: get_revenue},
        projections=[revenue],
        depends_on=["orders", "billing"],
    )
    return Application([orders, billing, analytics], **options)


async def unprocessed_position(app: Application, context: DispatchContext | None = None) -> int:
    """Stop ``app``'s consumers, then place an order: a position that is in the log but that analytics' read
    models (and billing's process manager) never reach, so a query waiting for it waits until its time is up."""
    for consumer in app.consumers.values():
        await consumer.stop()
    return (await app.execute(PlaceOrder(customer="late", amount=1), context)).position
