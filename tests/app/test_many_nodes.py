"""Several application processes on one SQLite file: each consumer runs in exactly one, and moves on death."""

from __future__ import annotations

import asyncio

from mini import GetRevenue, PlaceOrder, build

from citadel import Application, Deployment, WorkerSlot
from citadel.testing import settle

CONSUMERS = ("analytics.revenue", "billing.open_invoices")


def holders(nodes: list[Application], name: str) -> list[Application]:
    return [node for node in nodes if node.consumers[name].active]


async def settle_nodes(nodes: list[Application], position: int) -> None:
    for name in CONSUMERS:
        assert await nodes[0].consumers[name].wait_for(position, timeout=10)


async def test_each_consumer_is_active_in_exactly_one_node_and_counts_every_event_once(store_url: str) -> None:
    store = store_url
    nodes = [build(store=store, lease_ttl=0.5) for _ in range(3)]
    for node in nodes:
        await node.start()
    try:
        results = await asyncio.gather(*(nodes[i % 3].execute(PlaceOrder(customer="c", amount=1)) for i in range(60)))
        await settle_nodes(nodes, max(r.position for r in results))
        for name in CONSUMERS:
            assert len(holders(nodes, name)) == 1
        assert await nodes[1].query(GetRevenue()) == {"orders": 60}
        await settle(nodes[0])
        opened = [r for r in await nodes[0].store.read_all(limit=1000) if r.type == "billing.InvoiceOpened"]
        assert len(opened) == 60
    finally:
        for node in nodes:
            await node.stop()


async def test_when_the_active_node_dies_another_takes_over_within_the_lease_time(store_url: str) -> None:
    store = store_url
    nodes = [build(store=store, lease_ttl=0.5) for _ in range(2)]
    for node in nodes:
        await node.start()
    try:
        first = await nodes[0].execute(PlaceOrder(customer="c", amount=1))
        await settle_nodes(nodes, first.position)
        (active,) = holders(nodes, "analytics.revenue")
        survivor = nodes[1] if active is nodes[0] else nodes[0]
        # a crash: the consumers stop without releasing their leases
        for consumer in active.consumers.values():
            task = consumer._task
            assert task is not None
            task.cancel()
        await asyncio.sleep(0)
        second = await survivor.execute(PlaceOrder(customer="c", amount=1))
        assert await survivor.consumers["analytics.revenue"].wait_for(second.position, timeout=5)
        assert survivor.consumers["analytics.revenue"].active
        assert await survivor.query(GetRevenue()) == {"orders": 2}
    finally:
        for node in nodes:
            await node.stop()


async def test_the_workers_of_a_node_share_out_its_consumers_and_one_alone_takes_them_all(store_url: str) -> None:
    nodes = [build(store=store_url, lease_ttl=0.5) for _ in range(2)]
    for slot in (1, 0):  # the second worker starts first, and still leaves the first its share
        await nodes[slot].start(Deployment(worker=WorkerSlot(slot, 2)))
    try:
        first = await nodes[0].execute(PlaceOrder(customer="c", amount=1))
        await settle_nodes(nodes, first.position)
        await asyncio.sleep(0.6)  # past the stand-by time: a worker would have taken what nobody held
        assert holders(nodes, "analytics.revenue") == [nodes[0]]
        assert holders(nodes, "billing.open_invoices") == [nodes[1]]
    finally:
        for node in nodes:
            await node.stop()
    alone = build(store=store_url, lease_ttl=0.5)
    await alone.start(Deployment(worker=WorkerSlot(1, 2)))
    try:
        second = await alone.execute(PlaceOrder(customer="c", amount=1))
        for name in CONSUMERS:  # the first worker is not there: after standing by, this one takes its share
            assert await alone.consumers[name].wait_for(second.position, timeout=5)
            assert alone.consumers[name].active
    finally:
        await alone.stop()
