"""The shop as three real ``citadel serve`` processes (billing; analytics; users, content and orders), each
with its own SQLite file, over NATS: a service killed mid-flow, and the NATS server restarted mid-flow."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from deployments import drop_namespace
from shopper import SECRET, invoice, ok, order, order_status, pay, problem, publish, register, revenue, settle, statuses
from test_serve_process import ADMIN, CITADEL, ROOT, free_port, order_ids_by_event_type, stop

from citadel.messaging.signing import ServiceKeys
from citadel.security.encryption import MasterKeys

pytestmark = pytest.mark.slow
STARTUP = 20.0
SERVICES = {"billing": "billing", "analytics": "analytics", "shop": "users,content,orders"}
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


@dataclass
class Service:
    """One ``citadel serve`` process running some of the shop's modules."""

    name: str
    modules: str
    folder: Path
    broker: str
    keys: ServiceKeys
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> str:
        return f"sqlite:///{self.folder / self.name}.db"

    @property
    def output(self) -> Path:
        return self.folder / f"{self.name}.log"

    def start(self) -> None:
        command = [CITADEL, "serve", "examples.shop:app", "--port", str(self.port), "--store", self.store]
        command += ["--modules", self.modules, "--broker", self.broker]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
        env |= {
            "CITADEL_AUTH_SECRET": SECRET,
            "CITADEL_MASTER_KEY_FILE": str(self.folder / "master-keys.json"),
            "CITADEL_SERVICE_KEY": self.keys.setting(),
            "CITADEL_RATE_LIMIT_RATE": "100000",
            "CITADEL_RATE_LIMIT_BURST": "100000",
            "CITADEL_RATE_LIMIT_ADDRESS_RATE": "100000",
            "CITADEL_RATE_LIMIT_ADDRESS_BURST": "100000",
        }
        with self.output.open("ab") as output:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP
        with httpx.Client(base_url=self.url) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/health").status_code == 200:
                        return
                time.sleep(0.1)
        pytest.fail(f"{self.name} did not answer /health within {STARTUP} s:\n{self.log()}")

    def kill(self) -> None:
        """Kill the process at once (no shutdown at all)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-3000:]


@contextlib.asynccontextmanager
async def three_services(folder: Path, broker: str) -> AsyncIterator[dict[str, Service]]:
    keys = ServiceKeys.generate()  # shared by the services, as is the master key file
    MasterKeys.generate().create(folder / "master-keys.json")
    services = {name: Service(name, modules, folder, broker, keys) for name, modules in SERVICES.items()}
    try:
        for service in services.values():
            service.start()
        yield services
    except AssertionError as exc:
        logs = "\n".join(f"--- {s.name} ---\n{s.log()}" for s in services.values())
        raise AssertionError(f"{exc}\n{logs}") from exc
    finally:
        for service in services.values():
            service.stop()


@contextlib.asynccontextmanager
async def clients(services: dict[str, Service]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the shop node, whose ``nodes`` are clients of every service (for ``settle``)."""
    async with contextlib.AsyncExitStack() as stack:
        nodes = {
            name: await stack.enter_async_context(httpx.AsyncClient(base_url=s.url, headers=ADMIN, timeout=30))
            for name, s in services.items()
        }
        entry = nodes["shop"]
        entry.nodes = list(nodes.values())  # type: ignore[attr-defined]
        yield entry


async def events_of(folder: Path, service: str) -> dict[str, list[str]]:
    """The order ids of each event type in one service's log, read after the services stopped."""
    return await order_ids_by_event_type(f"sqlite:///{folder / service}.db", folder / "master-keys.json")


@pytest.fixture
async def broker() -> AsyncIterator[str]:
    url = f"nats://127.0.0.1:4222/test-{uuid.uuid4().hex[:12]}"
    yield url
    await drop_namespace(url)


async def test_with_billing_killed_its_commands_fail_fast_and_orders_placed_meanwhile_are_billed_once_after(
    tmp_path: Path, broker: str
) -> None:
    async with three_services(tmp_path, broker) as services, clients(services) as client:
        customer, guide = await register(client), await publish(client, 500)
        first = await order(client, customer, guide)
        bill = await invoice(client, first.order_id, first.position)

        services["billing"].kill()
        refused = await pay(client, bill, key="while-down")
        assert refused.headers["retry-after"] == "1"
        problem(refused, 503, "unavailable")
        problem(await client.get("/billing/invoice", params={"order_id": first.order_id}), 503, "unavailable")
        meanwhile = [await order(client, customer, guide) for _ in range(3)]  # orders run here: they work

        services["billing"].start()
        bills = [await invoice(client, placed.order_id) for placed in meanwhile]
        assert [b["amount"] for b in bills] == [500, 500, 500]
        ok(await pay(client, bill, key="after-restart"))
        assert await order_status(client, first.order_id, "paid") == "paid"
        await settle(client)
        assert await revenue(client) == {"paid_orders": 1, "revenue": 500, "refunded": 0}
        assert await statuses(client) == {"created": 3, "paid": 1, "cancelled": 0, "refunded": 0}

    billing = await events_of(tmp_path, "billing")
    placed = sorted([first.order_id, *(p.order_id for p in meanwhile)])
    assert sorted(billing["orders.OrderCreated"]) == placed  # imported once each
    assert sorted(billing["billing.InvoiceOpened"]) == placed  # billed once each
    assert billing["billing.InvoicePaid"] == [first.order_id]


@dataclass
class NatsServer:
    """A NATS server of this test's own (JetStream, its state in ``folder``, kept across restarts)."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        pytest.fail("nats-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


async def test_with_the_nats_server_restarted_mid_flow_nothing_is_lost_or_duplicated(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        async with three_services(tmp_path, f"{server.url}/shop") as services, clients(services) as client:
            customer, guide = await register(client), await publish(client, 500)
            before = [await order(client, customer, guide) for _ in range(3)]
            await invoice(client, before[-1].order_id, before[-1].position)

            server.stop()
            during = [await order(client, customer, guide) for _ in range(3)]  # the log is the outbox
            problem(await client.get("/billing/invoice", params={"order_id": before[0].order_id}), 503, "unavailable")
            server.start()

            placed = [*before, *during]
            bills = [await invoice(client, p.order_id) for p in placed]
            for bill in bills[:2]:
                ok(await pay(client, bill, key=f"pay-{bill['order_id']}"))
            for p in placed[:2]:
                assert await order_status(client, p.order_id, "paid") == "paid"
            await settle(client)
            assert await revenue(client) == {"paid_orders": 2, "revenue": 1000, "refunded": 0}
            assert await statuses(client) == {"created": 4, "paid": 2, "cancelled": 0, "refunded": 0}
    finally:
        server.stop()

    ids = sorted(p.order_id for p in placed)
    billing, analytics = await events_of(tmp_path, "billing"), await events_of(tmp_path, "analytics")
    assert sorted(billing["billing.InvoiceOpened"]) == ids
    assert sorted(billing["orders.OrderCreated"]) == ids
    assert sorted(analytics["orders.OrderCreated"]) == ids
    assert sorted(analytics["billing.InvoicePaid"]) == sorted(p.order_id for p in placed[:2])
