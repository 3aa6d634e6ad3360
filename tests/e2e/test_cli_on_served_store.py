"""Every command line tool, and a Python program, on the store a real ``citadel serve`` wrote with its defaults.

``CITADEL_DEV=1 citadel serve examples.shop:app`` runs in a directory of its own, writing ``var/shop.db`` (sealed)
and its keys there; a purchase is made over HTTP and the server stopped. Each tool then runs there with no
``CITADEL_*`` variable, as an operator would (a test that changes the store works on a copy of ``var/``); without
the master key file, each says which setting gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from shopper import buy, can_read, publish, register, settle

from citadel.security.encryption import MasterKeys, is_sealed
from citadel.security.identity import issue_token

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CITADEL = str(Path(sys.executable).parent / "citadel")
SHOP = "examples.shop:app"
KEYS = Path("var/citadel-master-keys.json")
DATABASE = Path("var/shop.db")
EMAIL = "ada.served@example.com"
PARKED_ERROR = "RuntimeError: the payment gateway answered 503 " + "while opening the invoice " * 6 + "(end)"
_IGNORED = {"PYTHONPATH", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "COLUMNS", "LINES"}

# A Python program on the shop: `citadel.configure(app)` gives it serve's settings (not when ``unconfigured``).
# ``query`` prints every query answer; ``order`` first orders for the registered user (sealed streams); ``park``
# parks the order's ``OrderCreated`` for billing's process manager, as the consumer does when it gives up.
PROGRAM = """
import asyncio, json, sys
import msgspec
import citadel
from examples.shop import app
from examples.shop.analytics.contract import GetOrdersByStatus, GetRevenue
from examples.shop.billing.contract import GetInvoice
from examples.shop.content.contract import GetAccess, GetItem
from examples.shop.orders.contract import CreateOrder, GetOrder, OrderItem
from examples.shop.users.contract import GetUser

ADMIN = citadel.DispatchContext(actor=citadel.Actor("script-admin", frozenset({"admin"})))

async def answers(ids, context=ADMIN):
    user, item, order = ids["user_id"], ids["content_id"], ids["order_id"]
    queries = dict(revenue=GetRevenue(), statuses=GetOrdersByStatus(), user=GetUser(user_id=user))
    queries.update(item=GetItem(content_id=item), access=GetAccess(user_id=user, content_id=item))
    queries.update(order=GetOrder(order_id=order), invoice=GetInvoice(order_id=order))
    return {name: msgspec.to_builtins(await app.query(query, context)) for name, query in queries.items()}

async def main(mode, ids):
    if mode != "unconfigured":
        citadel.configure(app)
    async with app:
        context = ADMIN
        if mode == "order":  # its invoice is opened by billing's process manager, run by this program
            items = [OrderItem(content_id=ids["content_id"], quantity=1)]
            created = await app.execute(CreateOrder(customer_id=ids["user_id"], items=items), ADMIN)
            ids = {**ids, "order_id": created.result.order_id}
            context = msgspec.structs.replace(ADMIN, min_position=created.position, wait=10.0)
        if mode == "park":
            records = await app.store.read_all(1, 10_000)
            created = [r for r in records if r.type == "orders.OrderCreated" and r.event.order_id == ids["order_id"]]
            await app.store.add_dead_letter("billing.invoicing", created[0], ids["error"], 5)
        print(json.dumps(await answers(ids, context)))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""


@dataclass(frozen=True)
class Served:
    """What ``serve`` left: the directory it ran in (its ``var/``) and the ids of the purchase made over HTTP."""

    folder: Path
    ids: dict[str, str]


def environment(**variables: str) -> dict[str, str]:
    """The caller's environment without ``CITADEL_*`` variables (defaults only), importing ``examples``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_") and k not in _IGNORED}
    return env | {"PYTHONPATH": str(REPO), "COLUMNS": "80", **variables}


def run(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=60, check=False)


def citadel(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``citadel ARGS`` in ``cwd`` with the default settings."""
    return run(cwd, CITADEL, *args)


def program(cwd: Path, mode: str, ids: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``PROGRAM`` in ``cwd``."""
    return run(cwd, sys.executable, "-c", PROGRAM, mode, json.dumps(ids))


def answers(cwd: Path, ids: dict[str, str], mode: str = "query") -> dict[str, Any]:
    """Every query answer a configured Python program reads (failing the test, with its output, when it fails)."""
    result = program(cwd, mode, ids)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The exception that ended a Python program: the last line of its traceback, without the module."""
    return result.stderr.strip().splitlines()[-1].removeprefix("citadel.errors.")


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that succeeded."""
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> int:
    """Interrupt ``process`` as Ctrl-C would and return its exit status (killing its group if it hangs)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def wait_for(path: Path, text: str, process: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    """Wait until ``text`` appears in the output file ``path`` of ``process``."""
    deadline = time.monotonic() + seconds
    while text not in path.read_text(errors="replace"):
        assert process.poll() is None, f"exited with {process.returncode}: {path.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"no {text!r} within {seconds} s: {path.read_text(errors='replace')}"
        time.sleep(0.05)


async def purchase(url: str, secret: str) -> dict[str, str]:
    """Register, publish, order and pay over HTTP; wait until every consumer has caught up."""
    headers = {"authorization": f"Bearer {issue_token(secret, 'e2e-admin', ['admin'])}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        user_id = await register(client, EMAIL, "Ada")
        content_id = await publish(client, 700, "Notes")
        placed = await buy(client, user_id, content_id)
        assert await can_read(client, user_id, content_id, expected=True)
        await settle(client)
    return {"user_id": user_id, "content_id": content_id, "order_id": placed.order_id}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The store ``CITADEL_DEV=1 citadel serve examples.shop:app`` wrote in a directory of its own, server stopped."""
    folder = tmp_path_factory.mktemp("served")
    port = free_port()
    output = folder / "serve.log"
    limits = {f"CITADEL_RATE_LIMIT_{name}": "100000" for name in ("RATE", "BURST", "ADDRESS_RATE", "ADDRESS_BURST")}
    with output.open("wb") as log:
        process = subprocess.Popen(
            [CITADEL, "serve", SHOP, "--port", str(port)],
            cwd=folder,
            env=environment(CITADEL_DEV="1", **limits),  # the test polls hard; limits have tests of their own
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(output, "Citadel: serving", process)
        secret = (folder / "var" / "citadel-dev-secret").read_text().strip()
        ids = asyncio.run(purchase(f"http://127.0.0.1:{port}", secret))
    finally:
        status = stop(process)
    assert status == 0, output.read_text(errors="replace")
    return Served(folder, ids)


@pytest.fixture
def copy(served: Served, tmp_path: Path) -> Path:
    """A directory of the test's own holding a copy of what serve wrote (the test may change it)."""
    shutil.copytree(served.folder / "var", tmp_path / "var")
    return tmp_path


_VIEWS = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'citadel%' AND name NOT LIKE 'sqlite%'"


def view_rows(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every module's view table (``module__name``) in the store, sorted."""
    with contextlib.closing(sqlite3.connect(folder / DATABASE)) as db:
        tables = [row[0] for row in db.execute(_VIEWS)]
        return {table: sorted(db.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables}


def event_payloads(folder: Path) -> list[bytes]:
    with contextlib.closing(sqlite3.connect(folder / DATABASE)) as db:
        return [bytes(row[0]) for row in db.execute("SELECT data FROM citadel_events ORDER BY position")]


# -- reading what serve wrote -------------------------------------------------------------------------------


def test_projections_status_lists_projections_and_process_managers_with_no_lag(served: Served) -> None:
    lines = ok(citadel(served.folder, "projections", "status", SHOP, "--json")).splitlines()
    table = ok(citadel(served.folder, "projections", "status", SHOP))

    rows = {row.pop("name"): row for row in map(json.loads, lines)}
    head = len(event_payloads(served.folder))
    assert rows["analytics.RevenueTotals"] == {"module": "analytics", "mode": "async", "position": head, "lag": 0}
    assert rows["billing.invoicing"] == {"module": "billing", "mode": "process manager", "position": head, "lag": 0}
    assert (rows["orders.access"]["mode"], rows["users.Users"]["mode"]) == ("process manager", "inline")
    assert all(f"│ {name} " in table for name in rows)


def test_events_tail_prints_every_payload_that_serve_sealed_decrypted(served: Served) -> None:
    lines = ok(citadel(served.folder, "events", "tail", SHOP, "--last", "1000")).splitlines()

    payloads = event_payloads(served.folder)
    assert all(is_sealed(payload) and EMAIL.encode() not in payload for payload in payloads)
    assert len(lines) == len(payloads) >= 7
    assert all(line.rstrip().endswith("}") for line in lines)
    assert any("users.UserRegistered" in line and EMAIL in line for line in lines)


def test_events_tail_json_prints_one_decrypted_event_per_line(served: Served) -> None:
    lines = ok(citadel(served.folder, "events", "tail", SHOP, "--last", "3", "--json")).splitlines()
    everything = ok(citadel(served.folder, "events", "tail", SHOP, "--last", "1000", "--json")).splitlines()

    assert len(lines) == 3
    events = [json.loads(line) for line in everything]
    assert [e["position"] for e in events] == list(range(1, len(event_payloads(served.folder)) + 1))
    assert all(isinstance(e["data"], dict) and not e["forgotten"] for e in events)
    registered = next(e for e in events if e["type"] == "users.UserRegistered")
    assert registered["data"]["email"] == EMAIL
    assert [json.loads(line) for line in lines] == events[-3:]


# -- changing what serve wrote ------------------------------------------------------------------------------


def test_projections_rebuild_leaves_every_view_and_query_answer_as_serve_left_them(served: Served, copy: Path) -> None:
    views_before, answers_before = view_rows(copy), answers(copy, served.ids)
    assert {"users__users", "orders__orders", "billing__invoices", "analytics__revenue"} <= set(views_before)
    assert all(views_before.values())

    output = ok(citadel(copy, "projections", "rebuild", SHOP))

    assert "rebuilt 7 projection(s)" in output
    assert view_rows(copy) == views_before
    assert answers(copy, served.ids) == answers_before
    assert answers_before["order"]["status"] == "paid"
    assert answers_before["access"]["granted"] is True
    assert answers_before["revenue"]["revenue"] == 700


def test_a_configured_python_program_reads_and_writes_the_served_store_sealed(served: Served, copy: Path) -> None:
    before = len(event_payloads(copy))

    found = answers(copy, served.ids, mode="order")

    assert found["order"]["customer_id"] == served.ids["user_id"]
    assert (found["order"]["status"], found["order"]["total"]) == ("created", 700)
    assert (found["invoice"]["order_id"], found["invoice"]["status"]) == (found["order"]["order_id"], "open")
    assert found["user"]["email"] == EMAIL
    payloads = event_payloads(copy)
    assert len(payloads) > before
    assert all(is_sealed(payload) for payload in payloads)
    tail = [json.loads(line) for line in ok(citadel(copy, "events", "tail", SHOP, "--json")).splitlines()]
    assert any(e["type"] == "orders.OrderCreated" and e["data"]["order_id"] == found["order"]["order_id"] for e in tail)


def test_a_python_program_without_the_settings_is_refused_and_writes_nothing(served: Served, copy: Path) -> None:
    before = event_payloads(copy)

    result = program(copy, "unconfigured", served.ids)

    assert result.returncode == 1, result.stderr
    assert refusal(result).startswith("ConfigurationError: the payloads in this store are encrypted")
    assert all(name in result.stderr for name in ("CITADEL_MASTER_KEY", "master_key_file", "citadel.configure(app)"))
    assert "malformed" not in result.stderr
    assert event_payloads(copy) == before


def test_dead_letters_list_shows_a_parked_event_whole_and_retry_processes_it(served: Served, copy: Path) -> None:
    answers(copy, {**served.ids, "error": PARKED_ERROR}, mode="park")

    listed = ok(citadel(copy, "dead-letters", "list", SHOP)).splitlines()
    (letter,) = [json.loads(line) for line in ok(citadel(copy, "dead-letters", "list", SHOP, "--json")).splitlines()]
    retried = citadel(copy, "dead-letters", "retry", SHOP, str(letter["id"]))
    after = citadel(copy, "dead-letters", "list", SHOP, "--json")

    assert listed[0] == f"dead letter {letter['id']}  billing.invoicing  position {letter['position']}  5 attempts"
    assert listed[1].startswith(f"  event {letter['event_id']}  parked ")
    assert " ".join(line.strip() for line in listed[2:]) == PARKED_ERROR  # whole, wrapped to the terminal
    assert max(len(line) for line in listed) <= 80
    assert len(listed) > 3
    assert (letter["consumer"], letter["attempts"], letter["error"]) == ("billing.invoicing", 5, PARKED_ERROR)
    assert ok(retried) == f"retried dead letter {letter['id']}: processed and removed\n"
    assert ok(after) == ""
    assert ok(citadel(copy, "dead-letters", "list", SHOP)) == "no dead letters\n"


def test_dead_letters_retry_of_a_letter_that_does_not_exist_names_the_list_command(served: Served) -> None:
    result = citadel(served.folder, "dead-letters", "retry", SHOP, "999")

    assert result.returncode == 2
    assert result.stderr == "error: there is no dead letter 999; `citadel dead-letters list` shows them\n"


def test_consume_runs_the_served_stores_consumers_until_interrupted(served: Served, copy: Path) -> None:
    output = copy / "consume.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [CITADEL, "consume", SHOP], cwd=copy, env=environment(), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for(output, "Citadel: running the consumers of examples.shop:app", process)
        time.sleep(1.0)  # long enough to take the leases and read the sealed log from the checkpoints
    finally:
        status = stop(process)

    text = output.read_text(errors="replace")
    assert status == 0, text
    assert "Traceback" not in text
    assert "error" not in text.lower()


def test_keys_rotate_then_every_tool_still_opens_every_payload(served: Served, copy: Path) -> None:
    first = MasterKeys.load(copy / KEYS).current

    rotated = ok(citadel(copy, "keys", "rotate", SHOP))

    keys = MasterKeys.load(copy / KEYS)
    assert rotated.startswith(f"rotated the master key to {keys.current}; re-wrapped ")
    assert set(keys.keys) == {first, keys.current}
    tail = [json.loads(line) for line in ok(citadel(copy, "events", "tail", SHOP, "--json")).splitlines()]
    assert all(isinstance(e["data"], dict) for e in tail)
    assert answers(copy, served.ids)["user"]["email"] == EMAIL


# -- without the master key ---------------------------------------------------------------------------------


COMMANDS = ["projections status", "projections rebuild", "events tail", "events tail --json", "dead-letters list"]
COMMANDS += ["dead-letters list --json", "dead-letters retry 1", "consume", "keys rotate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_without_the_master_key_file_each_command_exits_2_naming_the_setting(
    served: Served, copy: Path, command: str
) -> None:
    words = command.split()
    named = 1 if words[0] == "consume" else 2  # APP follows the command's name
    (copy / KEYS).rename(copy / "moved-away.json")

    result = citadel(copy, *words[:named], SHOP, *words[named:])

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    message = " ".join(result.stderr.split())
    assert message.startswith(f"error: no master key: {KEYS} does not exist.")
    assert "master_key_file (CITADEL_MASTER_KEY_FILE)" in message
    assert "malformed" not in message
    assert "Traceback" not in message


@pytest.mark.parametrize("mode", ["configured", "unconfigured"])
def test_without_the_master_key_file_a_python_program_is_refused_naming_the_setting(
    served: Served, copy: Path, mode: str
) -> None:
    (copy / KEYS).rename(copy / "moved-away.json")

    result = program(copy, "query" if mode == "configured" else mode, served.ids)

    assert result.returncode == 1, result.stderr
    assert refusal(result).startswith("ConfigurationError: ")
    assert all(name in result.stderr for name in ("master_key_file", "CITADEL_MASTER_KEY"))
    assert "malformed" not in result.stderr
