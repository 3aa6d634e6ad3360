"""The article's CommandBus and ReadModelProjector, written with Citadel and durable on SQLite.

The shape is the seed's: register a handler for ``CreateOrder``, dispatch the command, and a projector whose
``handle_ordercreated`` keeps ``views[order_id] = {"status": "created", "total": ...}``. What Citadel adds:
typed messages, one handler per command (a second registration fails), the event stored in an append-only
log, and the view updated in the same transaction, so it survives a restart.

Run it: ``python examples/seed_pattern.py [database file]`` (twice: the orders of the first run are still there).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from citadel import (
    NO_STREAM,
    Application,
    Command,
    CommandContext,
    Event,
    Module,
    ProjectionContext,
    Projector,
    Query,
    QueryContext,
    View,
)


class CreateOrder(Command, name="orders.CreateOrder"):
    total: int


class OrderCreated(Event, name="orders.OrderCreated"):
    order_id: str
    total: int


class ListOrders(Query, name="orders.ListOrders"):
    limit: int = 100


class ReadModelProjector(Projector):
    """The seed's projector: ``handle_<eventname>`` methods fill ``self.views``."""

    views = View("orders")

    def handle_ordercreated(self, event: OrderCreated, ctx: ProjectionContext) -> None:
        ctx.view(self.views)[event.order_id] = {"status": "created", "total": event.total}


async def create_order(command: CreateOrder, ctx: CommandContext) -> dict[str, Any]:
    order_id = ctx.new_id()
    ctx.append(f"order-{order_id}", [OrderCreated(order_id=order_id, total=command.total)], NO_STREAM)
    return {"order_id": order_id}


async def list_orders(query: ListOrders, ctx: QueryContext) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await ctx.view(ReadModelProjector.views).find(limit=query.limit)
    return rows


def build_app(database: str) -> Application:
    """The seed's bus and projector as one Citadel module, on a SQLite file."""
    orders = Module(
        "orders",
        commands={CreateOrder: create_order},
        queries={ListOrders: list_orders},
        events=[OrderCreated],
        projections=[ReadModelProjector()],
    )
    return Application([orders], store=f"sqlite:///{database}")


async def main(database: str) -> None:
    async with build_app(database) as app:
        result = await app.dispatch(CreateOrder(total=4200))
        print(f"dispatched CreateOrder -> {result}")
        orders = await app.query(ListOrders())
        print(f"{len(orders)} order(s) in the read model of {database}; the newest: {orders[-1]}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "var/seed.db"))
