"""The seed's CommandBus and ReadModelProjector shape, written with Citadel, durable on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from citadel import DuplicateHandler, UnknownCommand
from citadel.testing import running
from examples.seed_pattern import CreateOrder, ListOrders, build_app, create_order


async def test_the_seed_projector_builds_the_view_and_it_survives_a_restart(tmp_path: Path) -> None:
    database = str(tmp_path / "seed.db")
    async with build_app(database) as app:
        first = await app.dispatch(CreateOrder(total=4200))
        assert await app.query(ListOrders()) == [{"status": "created", "total": 4200}]
    async with build_app(database) as app:
        await app.dispatch(CreateOrder(total=99))
        orders = await app.query(ListOrders())
        assert orders == [{"status": "created", "total": 4200}, {"status": "created", "total": 99}]
        (stored,) = await app.store.read_stream(f"order-{first['order_id']}")
        assert stored.type == "orders.OrderCreated"


async def test_the_bus_keeps_one_handler_per_command_and_refuses_unknown_ones(tmp_path: Path) -> None:
    app = build_app(str(tmp_path / "seed.db"))
    with pytest.raises(DuplicateHandler):
        app.commands.register(CreateOrder, create_order)
    async with running(app, tmp_path):
        with pytest.raises(UnknownCommand):
            await app.commands.dispatch(ListOrders())  # type: ignore[arg-type]
