"""The peer library's rows of the store benchmark (imported by ``bench/store.py``): the same workloads through
``eventsourcing``, when it is installed (``make bench`` installs it; the project itself never depends on it)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

Result = dict[str, Any]


def bench_peer(folder: Path, seconds: float, payload: str, row: Any) -> Result | None:
    """Events appended one by one through the peer library on SQLite; None when it is not installed."""
    try:
        from eventsourcing.application import Application as PeerApplication
        from eventsourcing.domain import Aggregate, event
    except ImportError:
        return None

    class Account(Aggregate):  # type: ignore[misc]
        @event("Opened")  # type: ignore[untyped-decorator]
        def __init__(self, memo: str) -> None:
            self.memo = memo

    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(folder / "peer.db"),
    }
    app = PeerApplication(env=env)
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    events = 0
    while time.perf_counter() < deadline:
        app.save(Account(memo=payload))
        events += 1
    elapsed = time.perf_counter() - started
    app.close()
    return row("peer library eventsourcing", 1, events, elapsed, events, [])


def bench_peer_orders(env: dict[str, str], seconds: float, name: str, payload: str, row: Any) -> Result | None:
    """The orders workload through the peer library on the database ``env`` names, on one thread (its application
    is synchronous): save a new order, get it back, pay it, save it. None when the library is not installed."""
    try:
        from eventsourcing.application import Application as PeerApplication
    except ImportError:
        return None
    order_class = peer_order_class()
    app = PeerApplication(env=env)
    events = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        order = order_class(customer=f"c{events % 100}", total=1200, memo=payload)
        app.save(order)
        order = app.repository.get(order.id)
        order.pay(amount=1200)
        app.save(order)
        events += 2
    elapsed = time.perf_counter() - started
    app.close()
    return row(name, 1, events, elapsed, events, [], "order")


@functools.cache
def peer_order_class() -> Any:
    """The peer library's order aggregate, defined once (the library registers each class by its topic)."""
    from eventsourcing.domain import Aggregate as PeerAggregate
    from eventsourcing.domain import event

    class PeerOrder(PeerAggregate):  # type: ignore[misc]
        @event("Placed")  # type: ignore[untyped-decorator]
        def __init__(self, customer: str, total: int, memo: str) -> None:
            self.customer, self.total, self.memo, self.status = customer, total, memo, "placed"

        @event("Paid")  # type: ignore[untyped-decorator]
        def pay(self, amount: int) -> None:
            if self.status != "placed" or amount != self.total:
                raise ValueError("order is not payable")
            self.status = "paid"

    return PeerOrder
