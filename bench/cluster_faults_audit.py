"""What the fault runs check (imported by ``bench/cluster_faults.py``), from the evidence itself: PostgreSQL's
tables, read directly, and HAProxy's line per request.

* Lost: an acknowledged command whose events are not in ``citadel.events`` (an order's ``orders.OrderCreated``
  on ``order-<id>``, an invoice's ``billing.InvoicePaid`` on ``invoice-<id>``), or whose ``Citadel-Position``
  names no event.
* Duplicated: a command key with two events of its kind (found by the correlation id the client gave it), an
  invoice paid twice, a key sent again that answered another order, or a projection that counted an event
  twice (the analytics' orders by status against the log's own counts).
* Leases: sampled every quarter second; a consumer whose lease stood expired longer than the TTL was not taken
  over in time.
* Answers: by status, from HAProxy's log, with whether each 503 carried ``Retry-After``; the rate of answers
  per second gives the recovery time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster_faults_ledger import Ledger

__all__ = ["Answer", "LeaseWatch", "analytics_twice", "answers", "audit_ledger", "recovery", "statuses"]


async def _connect(dsn: str) -> Any:
    import asyncpg

    return await asyncpg.connect(dsn.split("?", 1)[0], timeout=3)


async def audit_ledger(dsn: str, ledger: Ledger) -> tuple[list[str], list[str]]:
    """Check ``ledger`` against the log in ``dsn``; return what was lost and what was duplicated, each item a
    sentence naming the command's key and what the log holds.

    Raises:
        RuntimeError: no acknowledged order can be found by its correlation id (then the duplicate check would
            see nothing, so it must not pass).
    """
    connection = await _connect(dsn)
    try:
        keys = [e.key for e in ledger.entries]
        rows = await connection.fetch(
            "SELECT correlation_id, type, count(*) AS n FROM citadel.events WHERE correlation_id = ANY($1) "
            "AND type IN ('orders.OrderCreated', 'billing.InvoicePaid') GROUP BY correlation_id, type",
            keys,
        )
        by_key = {(r["correlation_id"], r["type"]): int(r["n"]) for r in rows}
        streams = [f"order-{e.subject}" for e in ledger.acknowledged() if e.kind == "create"]
        streams += [f"invoice-{e.subject}" for e in ledger.acknowledged() if e.kind == "pay"]
        counted = await connection.fetch(
            "SELECT stream_id, type, count(*) AS n FROM citadel.events WHERE stream_id = ANY($1) "
            "AND type IN ('orders.OrderCreated', 'billing.InvoicePaid') GROUP BY stream_id, type",
            streams,
        )
        in_stream = {r["stream_id"]: int(r["n"]) for r in counted}
        positions = [e.position for e in ledger.acknowledged() if e.position]
        found = {
            r["position"]
            for r in await connection.fetch("SELECT position FROM citadel.events WHERE position = ANY($1)", positions)
        }
    finally:
        await connection.close()
    acknowledged_orders = [e for e in ledger.acknowledged() if e.kind == "create"]
    if acknowledged_orders and not any((e.key, "orders.OrderCreated") in by_key for e in acknowledged_orders):
        raise RuntimeError("no acknowledged order's event carries its X-Correlation-Id: the duplicate check is blind")
    lost, duplicated = [], []
    for entry in ledger.entries:
        kind = "orders.OrderCreated" if entry.kind == "create" else "billing.InvoicePaid"
        stream = f"{'order' if entry.kind == 'create' else 'invoice'}-{entry.subject}"
        if by_key.get((entry.key, kind), 0) > 1:
            duplicated.append(f"{entry.key}: {by_key[(entry.key, kind)]} {kind} events with its correlation id")
        if not entry.acknowledged:
            continue
        if in_stream.get(stream, 0) == 0:
            lost.append(f"{entry.key}: acknowledged {entry.answer}, but {stream} holds no {kind}")
        elif in_stream[stream] > 1:
            duplicated.append(f"{entry.key}: {stream} holds {in_stream[stream]} {kind} events")
        if entry.position and entry.position not in found:
            lost.append(f"{entry.key}: acknowledged at position {entry.position}, which the log does not hold")
        if entry.again is not None and entry.kind == "create" and entry.again.get("order_id") != entry.subject:
            duplicated.append(f"{entry.key}: answered order {entry.subject}, then {entry.again} to the same key")
    return lost, duplicated


async def analytics_twice(dsn: str, counts: dict[str, int]) -> tuple[list[str], bool]:
    """Compare the analytics' orders by status (``counts``, read just before) with the log's own counts: every
    order counted once, every paid order once. Returns the counts above the log's (an event applied twice), and
    whether any count is below the log's (the projection is behind: ask again)."""
    connection = await _connect(dsn)
    try:
        created = await connection.fetchval(
            "SELECT count(DISTINCT stream_id) FROM citadel.events WHERE type = 'orders.OrderCreated'"
        )
        paid = await connection.fetchval(
            "SELECT count(DISTINCT stream_id) FROM citadel.events WHERE type = 'orders.OrderPaid'"
        )
    finally:
        await connection.close()
    orders, settled = sum(counts.values()), counts.get("paid", 0) + counts.get("refunded", 0)
    twice = []
    if orders > created:
        twice.append(f"analytics counts {orders} orders ({counts}), the log holds {created}")
    if settled > paid:
        twice.append(f"analytics counts {settled} paid and refunded orders, the log {paid} paid")
    return twice, orders < created or settled < paid


@dataclass
class LeaseWatch:
    """Samples ``citadel.leases`` every ``period`` seconds while it runs, by the database's clock."""

    dsn: str
    period: float = 0.25
    samples: list[tuple[float, str, str, float]] = field(default_factory=list)
    """``(monotonic time, lease, owner, seconds since it expired)``: negative while it holds."""

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set; a database that does not answer is asked again (and sampled as such)."""
        connection: Any = None
        while not stop.is_set():
            try:
                if connection is None:
                    connection = await _connect(self.dsn)
                rows = await connection.fetch(
                    "SELECT name, owner, extract(epoch FROM now() - expires_at) AS expired FROM citadel.leases"
                )
                now = time.monotonic()
                self.samples += [(now, r["name"], r["owner"], float(r["expired"])) for r in rows]
            except Exception:  # whatever the failure (refused, reset, a server shutting down): reconnect
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.terminate()
                connection = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.period)
        if connection is not None:
            await connection.close()

    def longest_expired(self, start: float, end: float) -> tuple[float, str]:
        """The longest any lease stood expired between ``start`` and ``end`` (monotonic), and which one."""
        worst = (0.0, "")
        for at, name, _, expired in self.samples:
            if start <= at <= end and expired > worst[0]:
                worst = (expired, name)
        return worst

    def moves(self, start: float, end: float) -> int:
        """How many times a lease changed owner between ``start`` and ``end``."""
        last: dict[str, str] = {}
        moved = 0
        for at, name, owner, _ in self.samples:
            if at > end:
                break
            if at >= start and name in last and last[name] != owner:
                moved += 1
            last[name] = owner
        return moved


@dataclass(frozen=True)
class Answer:
    """One request as HAProxy logged it: when it was answered (Unix time), by which node, with what."""

    end: float
    server: str
    status: int
    path: str
    retry_after: bool


def answers(log: Path) -> list[Answer]:
    """The requests in HAProxy's log (``cluster_services.LOG_FORMAT``), in the order they were logged."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 7 or not parts[0].replace(".", "").isdigit():
            continue
        start, total, server, status, _, path, header = parts
        with contextlib.suppress(ValueError):
            end = float(start) + max(int(total), 0) / 1000
            found.append(Answer(end, server, int(status), path, header not in ("{}", "{-}")))
    return found


def statuses(seen: Sequence[Answer], start: float, end: float) -> Counter[str]:
    """Errors answered between ``start`` and ``end`` (Unix time): 5xx by status, ``503+Retry-After`` apart and
    ``503 no node`` for HAProxy's own (no node up), ``-1`` for requests the client gave up before an answer."""
    found: Counter[str] = Counter()
    for answer in seen:
        if start <= answer.end <= end and (answer.status >= 500 or answer.status < 0):
            label = f"{answer.status}{'+Retry-After' if answer.retry_after else ''}"
            found[label + (" no node" if answer.server == "<NOSRV>" else "")] += 1
    return found


def recovery(
    seen: Sequence[Answer], before: tuple[float, float], fault: tuple[float, float], bound: float
) -> tuple[float, float, float]:
    """The rate of answers that are not 5xx in the window ``before`` (Unix times), the lowest rate of one second
    from the fault's start to the heal (``fault``) and the seconds after, and how long after the heal it took
    for two seconds in a row to reach 80% of the rate before again (``inf``: not within ``bound`` seconds)."""
    good = Counter(int(a.end) for a in seen if 0 < a.status < 500)
    first, last = int(before[0]), int(before[1])
    rate = sum(good[s] for s in range(first, last)) / max(last - first, 1)
    started, healed = fault
    lowest = min((good[s] for s in range(int(started), int(healed + bound))), default=0)
    second = int(healed)
    while second < healed + bound:
        if good[second] >= 0.8 * rate and good[second + 1] >= 0.8 * rate:
            return rate, lowest, max(second - healed, 0.0)
        second += 1
    return rate, lowest, float("inf")
