"""The HTTP path of the served shop, in process: what one request costs the server, without sockets.

The shop (``examples.shop.build_app``, encrypted, on a temporary SQLite file) is wrapped as ``citadel serve``
wraps it (bearer tokens, a rate limiter that never refuses) and its ASGI app is called directly with hand-built
scope, receive and send. Rows: ``GET /health``, ``GET /content/item``, ``GET /orders/order`` and
``GET /billing/invoice`` as the owning customer, ``POST /users/register-user`` (anonymous, a new email each),
``POST /orders/create-order`` and ``POST /billing/pay-invoice`` (an open invoice each, with ``Idempotency-Key``).

Each row is timed sequentially (one request after the other) and concurrently (``--concurrency`` in flight),
``--rounds`` times; the table shows the median round as microseconds per request, wall clock and CPU of this
process (all threads). Commands commit durably, so their sequential wall time is mostly the disk's.

Usage: ``python bench/http_path.py [--rounds 5] [--requests 1000] [--concurrency 200] [--uvloop]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from citadel import Actor, Application, DispatchContext
from citadel.http import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security import MemoryRateLimiter, RateRule, TokenVerifier, issue_token
from citadel.security.encryption import Keyring, MasterKeys
from citadel.testing import settle
from examples.shop import build_app
from examples.shop.billing.domain import invoice_id_for
from examples.shop.content.contract import PublishContent
from examples.shop.orders.contract import CreateOrder, OrderItem
from examples.shop.users.contract import RegisterUser

SECRET = "bench-secret-" + "x" * 32
ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class Call:
    """One request, built before the clock starts."""

    method: str
    path: str
    query: bytes
    body: bytes
    headers: list[tuple[bytes, bytes]]


async def send_one(app: ASGI, call: Call) -> int:
    """Send ``call`` to ``app``; return the response status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": call.method,
        "scheme": "http",
        "path": call.path,
        "raw_path": call.path.encode(),
        "query_string": call.query,
        "root_path": "",
        "headers": call.headers,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
    }
    received = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": call.body, "more_body": False}
        await asyncio.sleep(3600)  # a client that never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def run_sequential(app: ASGI, calls: Sequence[Call]) -> list[int]:
    return [await send_one(app, call) for call in calls]


async def run_concurrent(app: ASGI, calls: Sequence[Call], in_flight: int) -> list[int]:
    statuses: list[int] = []
    pending: Iterator[Call] = iter(calls)

    async def worker() -> None:
        for call in pending:
            statuses.append(await send_one(app, call))

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return statuses


def headers(token: str | None, *, json_body: bool = False, key: str | None = None) -> list[tuple[bytes, bytes]]:
    found = [(b"host", b"shop"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    if token is not None:
        found.append((b"authorization", f"Bearer {token}".encode()))
    if json_body:
        found.append((b"content-type", b"application/json"))
    if key is not None:
        found.append((b"idempotency-key", key.encode()))
    return found


class Shop:
    """The seeded shop and the requests of each row."""

    def __init__(self, app: Application, user: str, content: str, order: str, payers: list[tuple[str, str]]) -> None:
        self.app, self.user, self.content, self.order = app, user, content, order
        self.token = issue_token(SECRET, user, ["customer"])
        self.payers = payers
        self.serial = 0

    def next(self) -> int:
        self.serial += 1
        return self.serial

    async def calls(self, row: str, n: int) -> list[Call]:
        """Return ``n`` requests of ``row`` (fresh emails and open invoices where a request uses one up)."""
        auth = headers(self.token)
        if row == "GET /health":
            return [Call("GET", "/health", b"", b"", auth)] * n
        if row == "GET /content/item":
            return [Call("GET", "/content/item", f"content_id={self.content}".encode(), b"", auth)] * n
        if row == "GET /orders/order":
            return [Call("GET", "/orders/order", f"order_id={self.order}".encode(), b"", auth)] * n
        if row == "GET /billing/invoice":
            return [Call("GET", "/billing/invoice", f"order_id={self.order}".encode(), b"", auth)] * n
        if row == "POST /users/register-user":
            anonymous = headers(None, json_body=True)
            bodies = (json.dumps({"email": f"b{self.next()}@bench.test", "name": "Bench"}) for _ in range(n))
            return [Call("POST", "/users/register-user", b"", body.encode(), anonymous) for body in bodies]
        if row == "POST /orders/create-order":
            body = json.dumps({"customer_id": self.user, "items": [{"content_id": self.content, "quantity": 1}]})
            return [Call("POST", "/orders/create-order", b"", body.encode(), headers(self.token, json_body=True))] * n
        if row == "POST /billing/pay-invoice":
            return await self.open_invoices(n)
        raise ValueError(row)

    async def open_invoices(self, n: int) -> list[Call]:
        # One invoice per customer: paying grants access on the customer's access stream, and many payments
        # of one customer at once would contend for it in the background.
        payers = [self.payers[i % len(self.payers)] for i in range(n)]
        item = [OrderItem(content_id=self.content, quantity=1)]
        orders = await asyncio.gather(
            *(
                self.app.dispatch(CreateOrder(customer_id=user, items=item), customer_context(user))
                for user, _ in payers
            )
        )
        await settle(self.app, timeout=60.0)
        calls = []
        for (_, token), order in zip(payers, orders, strict=True):
            invoice = invoice_id_for(order.order_id)
            body = json.dumps({"invoice_id": invoice, "amount": order.total}).encode()
            call_headers = headers(token, json_body=True, key=f"pay-{invoice}")
            calls.append(Call("POST", "/billing/pay-invoice", b"", body, call_headers))
        return calls


ROWS = [
    "GET /health",
    "GET /content/item",
    "GET /orders/order",
    "GET /billing/invoice",
    "POST /users/register-user",
    "POST /orders/create-order",
    "POST /billing/pay-invoice",
]


def customer_context(user: str) -> DispatchContext:
    return DispatchContext(actor=Actor(user, frozenset({"customer"})))


async def seed(app: Application, payers: int) -> Shop:
    admin = DispatchContext(actor=Actor("root", frozenset({"admin"})))
    user = (await app.dispatch(RegisterUser(email="owner@bench.test", name="Owner"))).user_id
    content = (await app.dispatch(PublishContent(title="t", body="b", price=100), admin)).content_id
    item = [OrderItem(content_id=content, quantity=1)]
    order = await app.dispatch(CreateOrder(customer_id=user, items=item), customer_context(user))
    registered = await asyncio.gather(
        *(app.dispatch(RegisterUser(email=f"payer{i}@bench.test", name="Payer")) for i in range(payers))
    )
    await settle(app)
    tokens = [(r.user_id, issue_token(SECRET, r.user_id, ["customer"])) for r in registered]
    return Shop(app, user, content, order.order_id, tokens)


async def measure(asgi: ASGI, shop: Shop, row: str, n: int, in_flight: int | None) -> tuple[float, float, set[int]]:
    """Time one round of ``row``; return wall and CPU microseconds per request and the statuses seen."""
    calls = await shop.calls(row, n)
    wall, cpu = time.perf_counter(), time.process_time()
    if in_flight is None:
        statuses = await run_sequential(asgi, calls)
    else:
        statuses = await run_concurrent(asgi, calls, in_flight)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return 1e6 * wall / n, 1e6 * cpu / n, set(statuses)


async def main(rounds: int, requests: int, concurrency: int, rows: Sequence[str]) -> None:
    folder = tempfile.mkdtemp(prefix="citadel-http-bench-")
    app = build_app(store=f"sqlite:///{folder}/shop.db", keyring=Keyring(MasterKeys.generate()))
    asgi = create_asgi(
        app,
        manage_lifecycle=False,
        authenticate=bearer_authenticator(TokenVerifier(secret=SECRET)),
        limiter=MemoryRateLimiter(),
        rate_rule=RateRule(rate=1e9, burst=10**9),
    )
    async with app:
        shop = await seed(app, requests)
        print(f"{rounds} rounds of {requests} requests; median round, microseconds per request (wall / CPU)")
        print(f"{'':28} {'sequential':>17} {f'{concurrency} in flight':>17}  statuses")
        for row in rows:
            cells, seen = [], set()
            for in_flight in (None, concurrency):
                await measure(asgi, shop, row, min(requests, 200), in_flight)  # warm up
                samples = [await measure(asgi, shop, row, requests, in_flight) for _ in range(rounds)]
                for _, _, statuses in samples:
                    seen |= statuses
                wall = statistics.median(s[0] for s in samples)
                cpu = statistics.median(s[1] for s in samples)
                cells.append(f"{wall:8.1f} / {cpu:6.1f}")
            print(f"{row:28} {cells[0]:>17} {cells[1]:>17}  {sorted(seen)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")
    parser.add_argument("--row", action="append", choices=ROWS, help="only these rows (repeatable)")
    args = parser.parse_args()
    coroutine = main(args.rounds, args.requests, args.concurrency, args.row or ROWS)
    if args.uvloop:
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)
