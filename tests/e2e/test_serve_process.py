"""The shop served by a real ``citadel serve`` process (Citadel's own server, TCP), restarted on its file, with two
workers, with a worker killed, and served by granian."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from shopper import (
    SECRET,
    buy,
    can_read,
    invoice,
    ok,
    order,
    order_status,
    pay,
    publish,
    register,
    revenue,
    settle,
    statuses,
    token,
)

from citadel.security.encryption import Keyring, MasterKeys
from examples.shop import build_app
from tests.processes import stop

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]  # the repository root, so the server imports `examples`
CITADEL = str(Path(sys.executable).parent / "citadel")
STARTUP = 20.0

pytestmark = pytest.mark.slow
ADMIN = {"authorization": f"Bearer {token('serve-admin', 'admin')}"}


@dataclass(frozen=True)
class Server:
    url: str
    output: Path
    pid: int = 0

    def log(self) -> str:
        """Everything the server printed (its access log included)."""
        return self.output.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(
    folder: Path,
    store_url: str,
    workers: int = 1,
    kind: str = "citadel",
    consumers: str = "workers",
    *,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Run ``citadel serve examples.shop:app`` (from ``cwd``, with ``env`` or the tests' ``environment``) until
    the block ends, then stop it as Ctrl-C would.

    A failed assertion in the block carries the server's output.
    """
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", folder / f"server-{port}.log")
    command = [CITADEL, "serve", "examples.shop:app", "--port", str(port), "--store", store_url]
    command += ["--workers", str(workers), "--server", kind, "--consumers", consumers]
    with server.output.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env if env is not None else environment(folder),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = dataclasses.replace(server, pid=process.pid)
    try:
        wait_until_healthy(process, server)
        try:
            yield server
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- server output (its end) ---\n{server.log()[-4000:]}") from exc
    finally:
        stop(process)


@contextlib.contextmanager
def consuming(folder: Path, store_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``citadel consume examples.shop:app`` (output in ``consume.log``) until the block ends, then stop it
    as Ctrl-C would."""
    command = [CITADEL, "consume", "examples.shop:app", "--store", store_url]
    with (folder / "consume.log").open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=environment(folder), stdout=output, stderr=output)
    try:
        yield process
    finally:
        stop(process)


def master_key_file(folder: Path) -> Path:
    """``folder``'s master key file, made with ``citadel keys generate`` the first time (outside development mode
    a server creates no key)."""
    path = folder / "master-keys.json"
    if not path.exists():
        made = subprocess.run([CITADEL, "keys", "generate", str(path)], capture_output=True, text=True, check=False)
        assert made.returncode == 0, made.stderr
    return path


def environment(folder: Path) -> dict[str, str]:
    """The environment of a ``citadel`` process of these tests (their token secret, their master keys)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    return env | {
        "CITADEL_AUTH_SECRET": SECRET,  # the tests' tokens (shopper.token) verify on the server
        "CITADEL_MASTER_KEY_FILE": str(master_key_file(folder)),
        "CITADEL_RATE_LIMIT_RATE": "100000",  # the tests poll hard; the limits have their own tests
        "CITADEL_RATE_LIMIT_BURST": "100000",
        "CITADEL_RATE_LIMIT_ADDRESS_RATE": "100000",
        "CITADEL_RATE_LIMIT_ADDRESS_BURST": "100000",
    }


def wait_until_healthy(process: subprocess.Popen[bytes], server: Server) -> None:
    deadline = time.monotonic() + STARTUP
    with httpx.Client(base_url=server.url) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"citadel serve exited with {process.returncode}:\n{server.log()}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/health").status_code == 200:
                    return
            time.sleep(0.1)
    pytest.fail(f"citadel serve did not answer /health within {STARTUP} s:\n{server.log()}")


async def steady(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], window: float = 1.0) -> T:
    """Poll until ``done`` holds and the value has not changed for ``window`` seconds (or 20 s pass)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20.0
    value = await probe()
    since = loop.time()
    while loop.time() < deadline:
        if done(value) and loop.time() - since >= window:
            break
        await asyncio.sleep(0.05)
        latest = await probe()
        if latest != value:
            value, since = latest, loop.time()
    return value


async def test_a_purchase_over_tcp_survives_a_restart_of_the_server(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'shop.db'}"
    with serving(tmp_path, store_url) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            customer, guide, video = await register(client), await publish(client, 500), await publish(client, 250)
            placed = await buy(client, customer, guide, video)
            assert placed.total == 750
            assert await can_read(client, customer, guide, True)
            await settle(client)
            assert await revenue(client) == {"paid_orders": 1, "revenue": 750, "refunded": 0}

    with serving(tmp_path, store_url) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            assert await order_status(client, placed.order_id) == "paid"
            assert (await invoice(client, placed.order_id))["status"] == "paid"
            assert await can_read(client, customer, guide)
            assert await can_read(client, customer, video)
            await settle(client)
            assert await revenue(client) == {"paid_orders": 1, "revenue": 750, "refunded": 0}
            assert await statuses(client) == {"created": 0, "paid": 1, "cancelled": 0, "refunded": 0}


async def order_ids_by_event_type(store_url: str, master_key_file: Path) -> dict[str, list[str]]:
    """The order ids of each event type in a served shop's log (read after the server stopped, with its keys)."""
    keys = Keyring(MasterKeys.load(master_key_file))
    app = build_app(store=store_url, secure=False, keyring=keys)
    await app.start(consumers=False)
    try:
        log = await app.store.read_all(1, 100_000)
    finally:
        await app.stop()
    by_type: dict[str, list[str]] = {}
    for record in log:
        by_type.setdefault(record.type, []).append(getattr(record.event, "order_id", ""))
    return by_type


async def place_and_pay_through_two_workers(server: Server, orders: int, paid: int) -> list[str]:
    """Place ``orders`` orders at once, pay the first ``paid`` of them; return the order ids."""
    async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
        customer, guide = await register(client), await publish(client, 500)
        placed = await asyncio.gather(*(order(client, customer, guide) for _ in range(orders)))
        bills = [await invoice(client, p.order_id) for p in placed]  # polls: no min_position across workers
        assert len({b["invoice_id"] for b in bills}) == orders
        for bill in bills[:paid]:
            ok(await pay(client, bill, key=f"pay-{bill['order_id']}"))
        for p in placed[:paid]:
            assert await order_status(client, p.order_id, "paid") == "paid"
            assert await can_read(client, customer, guide, True)
        return [p.order_id for p in placed]


async def test_with_two_workers_every_order_gets_exactly_one_invoice_and_one_payment(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'shop.db'}"
    with serving(tmp_path, store_url, workers=2) as server:
        order_ids = await place_and_pay_through_two_workers(server, orders=6, paid=3)

    by_type = await order_ids_by_event_type(store_url, tmp_path / "master-keys.json")
    assert sorted(by_type["orders.OrderCreated"]) == sorted(order_ids)
    assert sorted(by_type["billing.InvoiceOpened"]) == sorted(order_ids)
    assert sorted(by_type["billing.InvoicePaid"]) == sorted(order_ids[:3])
    assert sorted(by_type["orders.OrderPaid"]) == sorted(order_ids[:3])
    assert sorted(by_type["content.AccessGranted"]) == sorted(order_ids[:3])


async def test_with_two_workers_the_analytics_count_every_order_exactly_once(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'shop.db'}"
    with serving(tmp_path, store_url, workers=2) as server:
        await place_and_pay_through_two_workers(server, orders=4, paid=2)
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            counts = await steady(lambda: statuses(client), lambda c: sum(c.values()) >= 4 and c["paid"] >= 2)
            money = await steady(lambda: revenue(client), lambda r: r["paid_orders"] >= 2)
        with contextlib.closing(sqlite3.connect(tmp_path / "shop.db")) as db:  # the workers shared the consumers out
            owners = dict(db.execute("SELECT name, owner FROM citadel_leases").fetchall())

    assert counts == {"created": 2, "paid": 2, "cancelled": 0, "refunded": 0}
    assert money == {"paid_orders": 2, "revenue": 1000, "refunded": 0}
    assert len(owners) == 5  # three process managers, two async projections
    assert len(set(owners.values())) == 2


def workers_of(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


async def test_a_killed_worker_is_replaced_and_the_shop_keeps_serving(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'shop.db'}"
    with serving(tmp_path, store_url, workers=2) as server:
        before = workers_of(server.pid)
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            now = workers_of(server.pid)
            if len(now) == 2 and before[0] not in now:
                break
            await asyncio.sleep(0.1)
        assert len(now) == 2
        assert before[0] not in now
        await place_and_pay_through_two_workers(server, orders=2, paid=1)
        assert "exited with status -9; starting another" in server.log()


async def test_with_consumers_in_a_process_of_their_own_the_shop_settles_and_that_process_is_replaced(
    tmp_path: Path,
) -> None:
    store_url = f"sqlite:///{tmp_path / 'shop.db'}"
    with serving(tmp_path, store_url, workers=2, consumers="process") as server:
        children = workers_of(server.pid)
        assert len(children) == 3  # two workers and the consumers' process
        await place_and_pay_through_two_workers(server, orders=2, paid=1)
        background = children[-1]  # forked last
        os.kill(background, signal.SIGKILL)
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline and (background in workers_of(server.pid) or len(workers_of(server.pid)) < 3):
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:  # the replacement works
            customer, guide = await register(client, "grace@example.com"), await publish(client, 300)
            placed = await order(client, customer, guide)
            ok(await pay(client, await invoice(client, placed.order_id)))  # billing's process manager opened it
            assert await order_status(client, placed.order_id, "paid") == "paid"
        assert "consumers in a process of their own" in server.log()
        assert f"background process {background} exited with status -9; starting another" in server.log()


async def test_servers_without_consumers_leave_them_to_citadel_consume(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'shop.db'}"
    with serving(tmp_path, store_url, consumers="none") as server:
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            customer, guide = await register(client), await publish(client, 500)
            placed = await order(client, customer, guide)
            await asyncio.sleep(1.0)  # nothing here opens its invoice
            assert (await client.get("/billing/invoice", params={"order_id": placed.order_id})).status_code == 404
            with consuming(tmp_path, store_url) as consumer:
                bill = await invoice(client, placed.order_id)
                assert bill["amount"] == 500
            assert consumer.returncode == 0
            assert "running the consumers of examples.shop:app" in (tmp_path / "consume.log").read_text()


async def test_granian_serves_the_same_shop(tmp_path: Path) -> None:
    with serving(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", kind="granian") as server:
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            customer, guide = await register(client), await publish(client, 500)
            placed = await buy(client, customer, guide)
            assert placed.total == 500
            await settle(client)
            assert await revenue(client) == {"paid_orders": 1, "revenue": 500, "refunded": 0}
        assert "with granian" in server.log()


def development_token(work: Path, env: dict[str, str]) -> str:
    """An administrator's token from ``citadel token --dev`` run in ``work`` (which creates the secret there)."""
    made = subprocess.run(
        [CITADEL, "token", "examples.shop:app", "--dev", "--subject", "ada", "--role", "admin"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


async def test_in_development_mode_citadel_token_and_citadel_serve_from_one_directory_share_the_secret(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")} | {"PYTHONPATH": str(ROOT)}
    bearer = {"authorization": f"Bearer {development_token(work, env)}"}

    with serving(tmp_path, "sqlite:///var/shop.db", cwd=work, env=env | {"CITADEL_DEV": "1"}) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            answered = await client.get("/analytics/revenue", headers=bearer)
        assert answered.status_code == 200, answered.text
        assert "development mode: created a master key in var/citadel-master-keys.json" in server.log()

    assert oct((work / "var").stat().st_mode & 0o777) == oct(0o700)
    for name in ("citadel-dev-secret", "citadel-master-keys.json", "shop.db"):
        assert oct((work / "var" / name).stat().st_mode & 0o777) == oct(0o600), name
