"""The shop as three services over a secured NATS server: TLS with the test CA, each service its own NATS user,
allowed its own modules' subjects and the few others it needs, every message signed with the services' shared
keys. Two servers: the config ``docs/services.md`` shows (NKEY users, seed files), and password users (in the
broker URL) replying on inboxes of their own. An order created in the shop gets its invoice from billing, read
back across services after the order's position; paying it marks the order paid, through billing's process
manager calling orders. NATS reports no permissions violation along the way: the permissions are enough."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from citadel import Application, DispatchContext, NotFound
from citadel.messaging.connection import BrokerConnection
from citadel.messaging.signing import ServiceKeys
from examples.shop import build_app
from examples.shop.billing.contract import GetInvoice, InvoiceSummary, PayInvoice
from examples.shop.content.contract import PublishContent
from examples.shop.orders.contract import CreateOrder, GetOrder, OrderItem
from examples.shop.users.contract import RegisterUser
from tests.broker.secured import GUIDE, SERVICES, Guided, Secured, guide_server, secured_server

T = TypeVar("T")
DEADLINE = 20.0


@pytest.fixture(params=["guide", "passwords"])
def secured(request: pytest.FixtureRequest) -> Iterator[Secured | Guided]:
    with guide_server() if request.param == "guide" else secured_server() as running:
        yield running


@contextlib.asynccontextmanager
async def services(secured: Secured | Guided, keys: ServiceKeys) -> AsyncIterator[dict[str, Application]]:
    """Each service of ``SERVICES`` started with its own store and its own NATS user; stopped afterwards."""
    started: dict[str, Application] = {}
    with tempfile.TemporaryDirectory(prefix="citadel-secured-shop-") as folder:
        try:
            for name, modules in SERVICES.items():
                broker = secured.broker(name, keys)
                app = build_app(store=f"sqlite:///{Path(folder) / name}.db", secure=False)
                await app.start(modules=modules, broker=broker)
                started[name] = app
            yield started
        finally:
            for app in reversed(started.values()):
                await app.stop()


async def eventually(attempt: Callable[[], Awaitable[T]], done: Callable[[T], bool] = lambda _: True) -> T:
    """``attempt()`` again until it returns what ``done`` accepts, without ``NotFound``, within the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        try:
            result = await attempt()
            if done(result):
                return result
        except NotFound:
            if loop.time() > deadline:
                raise
        if loop.time() > deadline:
            pytest.fail(f"not done within {DEADLINE} s: {result!r}")
        await asyncio.sleep(0.05)


async def test_an_order_in_the_shop_gets_its_invoice_from_billing_over_a_secured_server(
    secured: Secured | Guided, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="citadel.nats")
    async with services(secured, ServiceKeys.generate()) as running:
        shop = running["shop"]
        customer = await shop.dispatch(RegisterUser(email="ada@example.com", name="Ada"))  # users' service
        item = await shop.dispatch(PublishContent(title="Guide", body="...", price=500))
        created = await shop.execute(
            CreateOrder(customer_id=customer.user_id, items=[OrderItem(content_id=item.content_id, quantity=2)])
        )
        # read billing's invoice after the order: billing asks the shop whether it published orders' log that far
        read_after = DispatchContext(min_position=created.position, position_of="orders", wait=DEADLINE)
        bill: InvoiceSummary = await eventually(
            lambda: shop.query(GetInvoice(order_id=created.result.order_id), read_after)  # billing's service
        )
        assert (bill.amount, bill.status) == (1000, "open")
        await shop.dispatch(PayInvoice(invoice_id=bill.invoice_id, amount=bill.amount))
        order = await eventually(
            lambda: shop.query(GetOrder(order_id=created.result.order_id)), lambda o: o.status == "paid"
        )
        assert order.total == 1000
    assert "violation" not in secured.server.log().lower()
    assert not [r for r in caplog.records if "violation" in r.getMessage().lower()]


def test_the_guides_key_snippet_makes_a_user_nkey_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snippet = GUIDE.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(snippet, str(GUIDE), "exec"), {"__name__": "guide"})
    seed, public = capsys.readouterr().out.split()
    assert public.startswith("U")
    seed_file = tmp_path / "service.nk"
    seed_file.write_text(seed)
    seed_file.chmod(0o600)
    assert BrokerConnection(nkey_seed_file=seed_file).options(tls=False)["nkeys_seed"] == str(seed_file)
