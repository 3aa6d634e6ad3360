"""The operations console of a served shop, in a real browser (Debian's Chromium, driven by Playwright): an
administrator signs in, follows a purchase through the streams browser, retries a dead letter and rebuilds a
projection while the page follows its progress, under the page's content security policy and with nothing
fetched from another origin.

``CITADEL_SCREENSHOTS=docs/console`` writes the screenshots of the docs there. Missing Chromium or Playwright is a
failure, not a skip: ``apt-get install chromium`` and ``pip install playwright`` (the ``dev`` extra).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from shopper import buy, can_read, publish, register, settle

from citadel.security.identity import issue_token
from tests.processes import stop

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CITADEL = str(Path(sys.executable).parent / "citadel")
CHROMIUM = "/usr/bin/chromium"
SHOTS = os.environ.get("CITADEL_SCREENSHOTS")
GATEWAY = "RuntimeError: the payment gateway answered 503 while opening the invoice"

# Parks the purchase's OrderCreated for billing's process manager, as the consumer does when it gives up; run in
# the served shop's directory, where ``citadel.configure`` finds its store and keys.
PARK = """
import asyncio, sys
import citadel
from examples.shop import app

async def main(order_id, error):
    citadel.configure(app)
    await app.start(consumers=False)
    try:
        records = await app.store.read_all(1, 10_000)
        created = [r for r in records if r.type == "orders.OrderCreated" and r.event.order_id == order_id]
        await app.store.add_dead_letter("billing.invoicing", created[0], error, 5)
    finally:
        await app.stop()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@dataclass(frozen=True)
class Served:
    url: str
    token: str
    folder: Path
    order_id: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    return env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])), **variables}


async def purchase(url: str, token: str) -> str:
    """Register, publish, order and pay over HTTP; wait until every consumer has caught up; the order's id."""
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=10) as client:
        user_id = await register(client, "ada.console@example.com", "Ada")
        content_id = await publish(client, 700, "Notes")
        placed = await buy(client, user_id, content_id)
        assert await can_read(client, user_id, content_id, expected=True)
        await settle(client)
    return placed.order_id


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``CITADEL_DEV=1 citadel serve examples.shop:app`` in ``tmp_path``, with a purchase made and a letter parked."""
    port = free_port()
    limits = {f"CITADEL_RATE_LIMIT_{name}": "100000" for name in ("RATE", "BURST", "ADDRESS_RATE", "ADDRESS_BURST")}
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [CITADEL, "serve", "examples.shop:app", "--port", str(port)],
            cwd=tmp_path,
            env=environment(CITADEL_DEV="1", **limits),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while status(f"{url}/health") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"citadel serve did not start:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)
        secret = (tmp_path / "var" / "citadel-dev-secret").read_text().strip()
        token = issue_token(secret, "ops", ["admin"])
        order_id = asyncio.run(purchase(url, token))
        parked = subprocess.run(
            [sys.executable, "-c", PARK, order_id, GATEWAY],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert parked.returncode == 0, parked.stderr
        yield Served(url, token, tmp_path, order_id)
    finally:
        stop(process)


def status(url: str) -> int:
    try:
        return httpx.get(url).status_code
    except httpx.TransportError:
        return 0


def shoot(page: Any, name: str) -> None:
    """Save a screenshot of the page for the docs, when ``CITADEL_SCREENSHOTS`` names a folder."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_an_administrator_follows_a_purchase_retries_a_letter_and_rebuilds_a_projection(served: Served) -> None:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install playwright (the dev extra)")
    errors: list[str] = []
    elsewhere: list[str] = []
    polled: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: None if r.url.startswith(served.url) else elsewhere.append(r.url))
            page.on("request", lambda r: polled.append(r.url) if "/console/rebuild.json" in r.url else None)

            sign_in(page, served)
            follow_the_purchase(page, served)
            retry_the_letter(page)
            rebuild(page)
        finally:
            browser.close()
    refused = "Failed to load resource: the server responded with a status of 401"  # the sign-in page itself
    assert [error for error in errors if not error.startswith(refused)] == []
    assert elsewhere == []
    assert polled, "the rebuild page's script never asked for the progress"


def sign_in(page: Any, served: Served) -> None:
    response = page.goto(f"{served.url}/console")
    assert response.status == 401
    shoot(page, "login")
    page.fill("textarea[name=token]", served.token)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{served.url}/console")
    assert page.locator("#module-billing").is_visible()
    assert page.locator("table.crossings", has_text="orders.OrderCreated").is_visible()
    shoot(page, "modules")


def follow_the_purchase(page: Any, served: Served) -> None:
    """From the order's creation to the invoice the process manager opened, to its payment."""
    page.click("nav >> text=Streams")
    page.fill("input[name=type]", "orders.OrderCreated")
    page.click("form.search button[type=submit]")
    page.locator("table.events td", has_text="orders.OrderCreated").first.wait_for()
    shoot(page, "streams")
    page.locator("table.events tbody tr").first.locator("td a").first.click()
    assert served.order_id in page.locator("pre.payload").inner_text()
    chain = page.locator("table.events")
    assert chain.locator("td", has_text="billing.InvoiceOpened").count() == 1
    shoot(page, "event")
    chain.locator("tr", has_text="billing.InvoiceOpened").locator("td:nth-child(3) a").click()  # the invoice stream
    rows = page.locator("table.events tbody tr")
    assert [rows.nth(i).locator("td:nth-child(4)").inner_text() for i in range(rows.count())] == [
        "billing.InvoiceOpened",
        "billing.InvoicePaid",
    ]
    rows.nth(1).locator("td a").first.click()
    paid = page.locator("table.events")
    assert paid.locator("td", has_text="orders.OrderPaid").count() == 1  # the reaction to the payment, same chain
    assert json.loads(page.locator("pre.payload").inner_text())["order_id"] == served.order_id


def retry_the_letter(page: Any) -> None:
    page.click("nav >> text=Dead letters")
    group = page.locator("section.group")
    assert group.count() == 1
    assert "RuntimeError" in group.locator("h2").inner_text()
    assert "orders.OrderCreated" in group.locator("h2").inner_text()
    shoot(page, "dead-letters")
    group.locator("table.letters button", has_text="Retry").click()
    page.locator("p.notice", has_text="Retried 1 letter.").wait_for()
    assert page.locator("section.group").count() == 0


def rebuild(page: Any) -> None:
    page.click("nav >> text=Projections")
    row = page.locator("table.consumers tr", has_text="analytics.RevenueTotals")
    shoot(page, "projections")
    row.locator("button", has_text="Rebuild").click()
    page.wait_for_url("**/console/rebuild?projection=analytics.RevenueTotals")
    page.locator("#rebuild-state", has_text="done").wait_for(timeout=15_000)
    assert page.locator("#rebuild-bar").get_attribute("value") == "100"
    assert page.locator("#rebuild-percent").inner_text() == "100%"
    page.wait_for_timeout(300)  # the script's last answer has landed
    shoot(page, "rebuild")
