"""The store benchmark's domain (imported by ``bench/store.py``): a deposit that appends one event and updates a
balance inline, and an order that is placed (a new stream) then paid (read, decide, append at version 1)."""

from __future__ import annotations

from typing import Any

from citadel import (
    NO_STREAM,
    Aggregate,
    Application,
    Command,
    CommandContext,
    DomainError,
    Event,
    Module,
    Projector,
    View,
    decides,
    evolves,
    new_id,
)

PAYLOAD = "x" * 260  # with the field names and ids, ~300 bytes of JSON per event


class Deposited(Event, name="bench.Deposited"):
    account: str
    amount: int
    memo: str


class Deposit(Command, name="bench.Deposit"):
    account: str
    amount: int


BALANCES = View("balances")
balances = Projector("bench.balances", views=[BALANCES])


@balances.on(Deposited)
def _balance(event: Deposited, ctx: Any) -> None:
    ctx.view(BALANCES).increment(event.account, "balance", event.amount)


async def _deposit(command: Deposit, ctx: CommandContext) -> None:
    ctx.append(
        f"account-{command.account}-{ctx.new_id()}",
        [Deposited(account=command.account, amount=command.amount, memo=PAYLOAD)],
        NO_STREAM,
    )


class OrderPlaced(Event, name="bench.OrderPlaced"):
    order_id: str
    customer: str
    total: int
    memo: str


class OrderPaid(Event, name="bench.OrderPaid"):
    order_id: str
    amount: int


class PlaceOrder(Command, name="bench.PlaceOrder"):
    order_id: str
    customer: str
    total: int


class PayOrder(Command, name="bench.PayOrder"):
    order_id: str
    amount: int


class Order(Aggregate):
    status: str = "none"
    total: int = 0

    @decides
    def place(self, command: PlaceOrder) -> list[Event]:
        if self.status != "none":
            raise DomainError(f"order {command.order_id} exists already")
        return [OrderPlaced(order_id=command.order_id, customer=command.customer, total=command.total, memo=PAYLOAD)]

    @decides
    def pay(self, command: PayOrder) -> list[Event]:
        if self.status != "placed" or command.amount != self.total:
            raise DomainError(f"order {command.order_id} is {self.status}, total {self.total}")
        return [OrderPaid(order_id=command.order_id, amount=command.amount)]

    @evolves
    def placed(self, event: OrderPlaced) -> None:
        self.status, self.total = "placed", event.total

    @evolves
    def paid(self, event: OrderPaid) -> None:
        self.status = "paid"


ORDER = Order.decider()
ORDERS = View("orders")
order_statuses = Projector("bench.orders", views=[ORDERS])


@order_statuses.on(OrderPlaced)
def _order_placed(event: OrderPlaced, ctx: Any) -> None:
    ctx.view(ORDERS).put(event.order_id, {"customer": event.customer, "total": event.total, "status": "placed"})


@order_statuses.on(OrderPaid)
def _order_paid(event: OrderPaid, ctx: Any) -> None:
    ctx.view(ORDERS).merge(event.order_id, status="paid")


async def _place_order(command: PlaceOrder, ctx: CommandContext) -> None:
    await ctx.execute(ORDER, f"order-{command.order_id}", command, new=True)


async def _pay_order(command: PayOrder, ctx: CommandContext) -> None:
    await ctx.execute(ORDER, f"order-{command.order_id}", command)


def order_module() -> Module:
    """The orders workload's module: place an order (a new stream), pay it (read, decide, append at version 1)."""
    return Module(
        "bench",
        commands={PlaceOrder: _place_order, PayOrder: _pay_order},
        events=[OrderPlaced, OrderPaid],
        projections=[order_statuses],
    )


async def order_then_pay(app: Application, customer: int) -> int:
    """Create an order, then pay it: two commands, two events."""
    order_id = new_id()
    await app.dispatch(PlaceOrder(order_id=order_id, customer=f"c{customer % 100}", total=1200))
    await app.dispatch(PayOrder(order_id=order_id, amount=1200))
    return 2


def command_module() -> Module:
    """The command-path benchmark's module: a deposit appends one event and updates a balance inline."""
    return Module("bench", commands={Deposit: _deposit}, events=[Deposited], projections=[balances])
