"""Async projections and process managers: checkpoints, restarts, replays, rebuilds, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from mini import GetRevenue, InvoiceOpened, OrderPlaced, PayInvoice, PlaceOrder, build, open_invoices
from test_commands import invoice_for

from citadel import Application, RetryPolicy
from citadel.messaging.consumer import Consumer
from citadel.store.base import RecordedEvent
from citadel.store.sqlite import SQLiteEventStore
from citadel.testing import running, settle


async def revenue_after(app: Application) -> dict[str, int]:
    await settle(app)
    result: dict[str, int] = await app.query(GetRevenue())
    return result


async def place_and_pay(app: Application, amounts: list[int]) -> None:
    for amount in amounts:
        order_id = (await app.dispatch(PlaceOrder(customer="x", amount=amount)))["order_id"]
        await invoice_for(app, order_id)
        await app.dispatch(PayInvoice(order_id=order_id, amount=amount))


async def test_an_async_projection_catches_up_and_reports_no_lag(app: Application) -> None:
    await place_and_pay(app, [10, 20, 30])
    assert await revenue_after(app) == {"orders": 3, "paid": 60}
    status = {s.name: s for s in await app.projection_status()}
    assert status["analytics.revenue"].mode == "async"
    assert status["analytics.revenue"].lag == 0
    assert status["orders.OrderRows"].mode == "inline"


async def test_consumers_are_given_only_their_types_and_still_reach_the_head(app: Application) -> None:
    await place_and_pay(app, [10, 20])
    await settle(app)
    head = await app.store.head_position()
    assert (await app.store.read_all(head, 1))[0].type != "orders.OrderPlaced"  # the log ends with other types
    for consumer in app.consumers.values():
        assert consumer.types is not None  # every consumer of this app names its types
        assert consumer.position == head  # past the events it skipped
        assert await stored_checkpoint(app, consumer.name, head) == head  # and it says so for other processes


async def stored_checkpoint(app: Application, name: str, position: int, timeout: float = 5.0) -> int | None:
    """The consumer's stored checkpoint once it equals ``position``: a caught-up consumer persists it on its next
    turn, not in the step that advances it. Raises TimeoutError when it does not get there in ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while (stored := await app.store.checkpoint(name)) != position:
            await asyncio.sleep(0.01)
    return stored


async def test_a_restarted_application_resumes_projections_and_process_managers_without_repeats(
    store_url: str,
) -> None:
    async with running(build(), store=store_url) as app:
        await place_and_pay(app, [5, 6])
        assert await revenue_after(app) == {"orders": 2, "paid": 11}
    async with running(build(), store=store_url) as app:
        await place_and_pay(app, [7])
        assert await revenue_after(app) == {"orders": 3, "paid": 18}
        await settle(app)
        opened = [r for r in await app.store.read_all() if r.type == "billing.InvoiceOpened"]
        assert len(opened) == 3


async def test_replaying_a_process_manager_from_zero_opens_no_second_invoice(store_url: str) -> None:
    async with running(build(), store=store_url) as app:
        await place_and_pay(app, [1, 2, 3])
        await app.store.rewind_checkpoint("billing.open_invoices")
    async with running(build(), store=store_url) as app:
        await settle(app)
        await settle(app)
        opened = [r for r in await app.store.read_all() if r.type == "billing.InvoiceOpened"]
        assert len(opened) == 3


async def test_rebuilding_an_async_projection_gives_the_live_result(app: Application) -> None:
    await place_and_pay(app, [3, 4, 5, 6])
    live = await revenue_after(app)
    seen: list[tuple[int, int]] = []
    await app.rebuild_projection("analytics.revenue", progress=lambda done, total: seen.append((done, total)))
    assert await app.query(GetRevenue()) == live
    assert seen
    assert seen[-1][0] == seen[-1][1]


async def test_rebuilding_an_inline_projection_while_commands_run_loses_nothing(app: Application) -> None:
    for i in range(50):
        await app.dispatch(PlaceOrder(customer=f"c{i % 5}", amount=i))

    async def more() -> None:
        for i in range(50, 80):
            await app.dispatch(PlaceOrder(customer=f"c{i % 5}", amount=i))

    writer = asyncio.create_task(more())
    await app.rebuild_projection("orders.OrderRows")
    await writer
    from mini import OrderRows

    reader = app.view_reader(OrderRows.orders)
    rows = await reader.find(limit=1000)
    assert sorted(r.amount for r in rows) == list(range(80))
    assert await reader.count(customer="c1") == 16
    assert await app.store.checkpoint("orders.OrderRows") is None


async def test_a_reaction_that_keeps_failing_is_parked_once_and_later_events_still_flow(store_url: str) -> None:
    @open_invoices.on(OrderPlaced)
    def explode(event: OrderPlaced) -> None:
        if event.amount == 13:
            raise RuntimeError("unlucky amount")

    try:
        app = build()
        async with running(app, store=store_url):
            manager = app.consumers["billing.open_invoices"]
            manager.retry = RetryPolicy(max_attempts=3, base_delay=0.001)
            for amount in (12, 13, 14):
                await app.dispatch(PlaceOrder(customer="z", amount=amount))
            await settle(app)
            (letter,) = await app.store.dead_letters("billing.open_invoices")
            assert letter.error == "RuntimeError: unlucky amount"
            assert letter.attempts == 3
            # the first reaction to 13 committed once, despite three attempts; 14 came after the parked event
            opened = [r.event for r in await app.store.read_all() if r.type == "billing.InvoiceOpened"]
            assert sorted(e.amount for e in opened if isinstance(e, InvoiceOpened)) == [12, 13, 14]
    finally:
        open_invoices._reactions.pop()


async def test_a_consumer_of_some_types_scans_a_window_of_positions_per_page(
    tmp_path: Path,
) -> None:
    store = SQLiteEventStore(tmp_path / "log.db", build().registry)
    await store.open()

    class Pages(Consumer):
        types = frozenset({"orders.OrderPlaced"})
        window = 10
        seen: list[tuple[int, int]] = []

        async def process(self, records: Sequence[RecordedEvent], upto: int) -> None:
            self.seen.append((len(records), upto))

    try:
        for n in range(24):  # every other event is of the consumer's type
            await store.append(f"order-{n}", [OrderPlaced(order_id=str(n), customer="x", amount=n)])
            await store.append(f"invoice-{n}", [InvoiceOpened(order_id=str(n), amount=n)])
        consumer = Pages("test.pages", store, owner="test")
        await consumer.start()
        assert await consumer.wait_for(48, 5)
        await consumer.stop()
        # 10 positions per page, 5 of them wanted, up to the head
        assert consumer.seen == [(5, 10), (5, 20), (5, 30), (5, 40), (4, 48)]
    finally:
        await store.close()


async def test_a_process_manager_following_live_commits_saves_its_checkpoint_now_and_then_not_per_page(
    app: Application,
) -> None:
    # Saving after every page cost a write per commit. Now it saves at most every ``visible_within`` seconds
    # when caught up, and still gets the head stored for other processes soon after.
    manager = app.consumers["billing.open_invoices"]
    saves: list[int] = []
    store = app.store
    save = store.save_checkpoint

    async def counted(name: str, position: int, lease: object = None) -> None:
        if name == manager.name:
            saves.append(position)
        await save(name, position, lease)  # type: ignore[arg-type]

    store.save_checkpoint = counted  # type: ignore[method-assign]
    try:
        for amount in range(1, 31):  # one commit at a time: the manager reads a page for each
            await app.dispatch(PlaceOrder(customer="x", amount=amount))
            await asyncio.sleep(0.002)
        await settle(app)
        head = await store.head_position()
        assert await stored_checkpoint(app, manager.name, manager.position) == manager.position
        assert manager.position == head
    finally:
        del store.save_checkpoint
    assert 1 <= len(saves) < 15
    assert saves == sorted(saves)
    opened = [r for r in await store.read_all(limit=1000) if r.type == "billing.InvoiceOpened"]
    assert len(opened) == 30
