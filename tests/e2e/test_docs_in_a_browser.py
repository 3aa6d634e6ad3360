"""The docs page of a served shop, in a real browser (Debian's Chromium, driven by Playwright): Swagger UI
renders the operations under the page's content security policy, and nothing is fetched from another origin.

Missing Chromium or Playwright is a failure, not a skip: ``apt-get install chromium`` and
``pip install playwright`` (the ``dev`` extra).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CITADEL = str(Path(sys.executable).parent / "citadel")
CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def shop_url(tmp_path: Path) -> Iterator[str]:
    """The URL of ``citadel serve examples.shop:app --dev`` (run in ``tmp_path``, where it makes its keys)."""
    port = free_port()
    command = [CITADEL, "serve", "examples.shop:app", "--dev", "--port", str(port)]
    command += ["--store", f"sqlite:///{tmp_path / 'shop.db'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while httpx_status(f"{url}/health") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"citadel serve did not start:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def httpx_status(url: str) -> int:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(url).status_code
    return 0


def test_swagger_ui_renders_the_shops_operations_from_the_shop_alone(shop_url: str) -> None:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install playwright (the dev extra)")
    errors: list[str] = []
    elsewhere: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "request",
                lambda request: None if request.url.startswith(shop_url) else elsewhere.append(request.url),
            )
            page.goto(f"{shop_url}/docs")
            operation = page.locator(".opblock-summary-path", has_text="/orders/create-order")
            try:
                operation.first.wait_for(timeout=15_000)
            except PlaywrightTimeout:
                pytest.fail(f"no operation rendered; console errors: {errors}")
            assert page.locator(".opblock").count() > 5
            operation.first.click()  # expands, showing the request body's example
            page.get_by_role("button", name="Try it out").first.click()
            page.get_by_role("button", name="Execute").first.click()  # anonymous: the shop answers 401
            page.locator(".live-responses-table .response-col_status", has_text="401").wait_for(timeout=5_000)
        finally:
            browser.close()
    refused = "Failed to load resource: the server responded with a status of 401"
    assert [error for error in errors if not error.startswith(refused)] == []
    assert elsewhere == []
