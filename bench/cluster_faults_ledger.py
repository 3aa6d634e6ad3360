"""The fault runs' own client (imported by ``bench/cluster_faults.py``): a few customers that create orders and
pay invoices through HAProxy while the virtual users load it, and keep a ledger of every command.

Each command carries an ``Idempotency-Key`` and, as its ``X-Correlation-Id``, the same key, so the audit
(``bench/cluster_faults_audit.py``) finds its events in the log by it. A command is sent again with the same key
and body until it gets an answer that is not a 5xx (a 503 after its ``Retry-After``), or its deadline passes:
that is what a careful client does, and it is what the idempotency records must make safe. Every answer's
status is kept; a 2xx answer (the command acknowledged) keeps its body and ``Citadel-Position``. One
acknowledged command in four is sent once more with its key, and the answer must be the same.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Customer", "Entry", "Ledger", "burst", "payable", "run_ledger"]

NO_ANSWER = 0
"""The status kept for an attempt that got no answer (connection refused or reset, timeout)."""
RESEND_EVERY = 4


@dataclass(frozen=True)
class Customer:
    """A seeded customer the virtual users leave alone: its token and its open invoices."""

    user_id: str
    token: str
    invoices: tuple[tuple[str, int], ...]
    """``(invoice_id, amount)`` of each open invoice."""


@dataclass
class Entry:
    """One command of the ledger and everything it was answered."""

    key: str
    kind: str
    """``create`` (``POST /orders/create-order``) or ``pay`` (``POST /billing/pay-invoice``)."""
    subject: str
    """The order (its id, once acknowledged) or the invoice the command is about."""
    statuses: list[int] = field(default_factory=list)
    retry_after: list[bool] = field(default_factory=list)
    """For each answer: whether it carried ``Retry-After``."""
    answer: dict[str, Any] | None = None
    position: int | None = None
    again: dict[str, Any] | None = None
    """The answer to the same key sent once more after the acknowledgement (one command in four)."""

    @property
    def acknowledged(self) -> bool:
        return self.answer is not None


@dataclass
class Ledger:
    """Every command the client sent, in order."""

    entries: list[Entry] = field(default_factory=list)
    gave_up: int = 0
    """Commands still unanswered (5xx or nothing) at their deadline: never acknowledged, so never owed."""

    def statuses(self) -> Counter[int]:
        """How often each status was answered (``NO_ANSWER`` for none), over every attempt."""
        return Counter(s for e in self.entries for s in e.statuses)

    def acknowledged(self) -> list[Entry]:
        return [e for e in self.entries if e.acknowledged]


def payable(customers: Sequence[Customer]) -> Iterator[tuple[Customer, str, int]]:
    """Every open invoice of ``customers``, with its customer, spread over the customers."""
    slots = max((len(c.invoices) for c in customers), default=0)
    for slot in range(slots):
        for customer in customers:
            if slot < len(customer.invoices):
                yield (customer, *customer.invoices[slot])


async def _send(client: httpx.AsyncClient, path: str, token: str, key: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key, "X-Correlation-Id": key}
    return await client.post(path, json=body, headers=headers)


async def _command(
    client: httpx.AsyncClient, entry: Entry, path: str, token: str, body: dict[str, Any], deadline: float
) -> None:
    """Send until acknowledged, refused (a 4xx) or past ``deadline``; keep every answer in ``entry``."""
    while True:
        pause = 0.3
        try:
            response = await _send(client, path, token, entry.key, body)
        except httpx.HTTPError:
            entry.statuses.append(NO_ANSWER)
            entry.retry_after.append(False)
        else:
            entry.statuses.append(response.status_code)
            after = response.headers.get("retry-after")
            entry.retry_after.append(after is not None)
            if response.status_code < 300:
                entry.answer = response.json()
                entry.position = int(response.headers.get("citadel-position") or 0) or None
                return
            if response.status_code < 500:
                return  # refused: the domain said no, nothing to retry
            if after is not None and after.isdigit():
                pause = min(float(after), 2.0)
        if time.monotonic() + pause > deadline:
            return
        await asyncio.sleep(pause)


async def _resend(client: httpx.AsyncClient, entry: Entry, path: str, token: str, body: dict[str, Any]) -> None:
    """The same key and body once more; keep its answer (or none) in ``entry.again``."""
    for _ in range(20):
        try:
            response = await _send(client, path, token, entry.key, body)
        except httpx.HTTPError:
            await asyncio.sleep(0.5)
            continue
        if response.status_code < 500:
            entry.again = {"status": response.status_code, **response.json()}
            return
        await asyncio.sleep(0.5)


async def run_ledger(
    url: str,
    customers: Sequence[Customer],
    invoices: Iterator[tuple[Customer, str, int]],
    items: Sequence[str],
    label: str,
    stop: asyncio.Event,
    *,
    workers: int = 8,
    think: float = 0.2,
    patience: float = 30.0,
) -> Ledger:
    """Run ``workers`` clients against ``url`` until ``stop`` is set, each creating an order,
    then paying the next of ``invoices`` (while any is left: each is paid once, by its customer), and so on,
    ``think`` seconds apart. Keys start with ``label``. A command still unanswered ``patience`` seconds after its
    first attempt is given up. Returns the ledger once every command has ended (commands under way when
    ``stop`` is set go on to their end)."""
    ledger = Ledger()
    numbers = itertools.count()
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url, timeout=15.0, limits=limits) as client:

        async def worker(first: int) -> None:
            for turn in itertools.count():
                if stop.is_set():
                    return
                n = next(numbers)
                customer = customers[(first + turn * workers) % len(customers)]
                payable = next(invoices, None) if turn % 2 == 1 else None
                if payable is not None:
                    customer, invoice_id, amount = payable
                    entry = Entry(f"{label}-p{n}", "pay", invoice_id)
                    path, body = "/billing/pay-invoice", {"invoice_id": invoice_id, "amount": amount}
                else:
                    entry = Entry(f"{label}-c{n}", "create", "")
                    path = "/orders/create-order"
                    items_of = [{"content_id": items[n % len(items)], "quantity": 1}]
                    body = {"customer_id": customer.user_id, "items": items_of}
                ledger.entries.append(entry)
                await _command(client, entry, path, customer.token, body, time.monotonic() + patience)
                if entry.answer is None:
                    last = entry.statuses[-1] if entry.statuses else NO_ANSWER
                    ledger.gave_up += last == NO_ANSWER or last >= 500
                elif entry.kind == "create":
                    entry.subject = str(entry.answer.get("order_id", ""))
                if entry.answer is not None and n % RESEND_EVERY == 0:
                    await _resend(client, entry, path, customer.token, body)
                await asyncio.sleep(think)

        await asyncio.gather(*(worker(i) for i in range(workers)))
    return ledger


async def burst(
    node: str, url: str, customers: Sequence[Customer], items: Sequence[str], label: str, size: int = 16
) -> tuple[Ledger, int]:
    """Send ``size`` orders at once straight to ``node`` (bypassing HAProxy), as the fault that kills it starts;
    each one that gets no answer from it is then sent again through ``url`` with its key, as a client would.
    Returns their ledger and how many the node left unanswered."""
    ledger = Ledger()
    entries = [Entry(f"{label}-b{n}", "create", "") for n in range(size)]
    ledger.entries += entries
    bodies = [
        {
            "customer_id": customers[n % len(customers)].user_id,
            "items": [{"content_id": items[n % len(items)], "quantity": 1}],
        }
        for n in range(size)
    ]
    tokens = [customers[n % len(customers)].token for n in range(size)]
    async with httpx.AsyncClient(base_url=node, timeout=10.0, limits=httpx.Limits(max_connections=size)) as direct:
        await asyncio.gather(
            *(
                _command(direct, e, "/orders/create-order", t, b, 0.0)
                for e, t, b in zip(entries, tokens, bodies, strict=True)
            )
        )
    cut = sum(1 for e in entries if not e.acknowledged)
    async with httpx.AsyncClient(base_url=url, timeout=15.0) as client:
        retries = [
            _command(client, e, "/orders/create-order", t, b, time.monotonic() + 30.0)
            for e, t, b in zip(entries, tokens, bodies, strict=True)
            if not e.acknowledged
        ]
        await asyncio.gather(*retries)
    for entry in entries:
        if entry.answer is not None:
            entry.subject = str(entry.answer.get("order_id", ""))
        elif not entry.statuses or entry.statuses[-1] == NO_ANSWER or entry.statuses[-1] >= 500:
            ledger.gave_up += 1
    return ledger, cut
