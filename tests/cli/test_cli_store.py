"""The ``citadel`` command line operating a shop's store: ``projections status|rebuild`` and ``events tail``.

The store is seeded in-process (``shop_data``) and read back in-process; only the command line runs as a subprocess.
The settled shop's log, positions 1 to 7: UserRegistered, ContentPublished, OrderCreated, InvoiceOpened, InvoicePaid,
OrderPaid, AccessGranted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.shop import build_app

from .conftest import CITADEL, REPO, Citadel
from .shop_data import Shop, register, views

SHOP = "examples.shop:app"
PROJECTIONS = {
    "users.Users": ("users", "inline"),
    "content.Catalog": ("content", "inline"),
    "content.Readers": ("content", "inline"),
    "orders.OrderSummaries": ("orders", "inline"),
    "billing.Invoices": ("billing", "inline"),
    "analytics.RevenueTotals": ("analytics", "async"),
    "analytics.OrdersByStatus": ("analytics", "async"),
}
PROCESS_MANAGERS = {
    manager.consumer_name(module.name): module.name
    for module in build_app().modules.values()
    for manager in module.process_managers
}
"""The shop's process managers by name, with their module (``billing.invoicing``, ``orders.access``, ...)."""
TYPES = [
    "users.UserRegistered",
    "content.ContentPublished",
    "orders.OrderCreated",
    "billing.InvoiceOpened",
    "billing.InvoicePaid",
    "orders.OrderPaid",
    "content.AccessGranted",
]
# position, recorded_at, stream@version, type, actor, payload
LINE = re.compile(r"^ *(\d+)  (\d{4}-\d\d-\d\dT[\d:.]+\+00:00)  (\S+)@(\d+)  (\S+)  by (\S+)  (\{.*\})$")


def status_rows(stdout: str) -> dict[str, tuple[str, ...]]:
    """The rows of the status table, by consumer name: (module, mode, position, lag)."""
    lines = [line for line in stdout.splitlines() if line[:1] in "│┃"]
    rows = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]] for line in lines]
    return {row[0]: tuple(row[1:]) for row in rows}


def tail_lines(stdout: str) -> list[tuple[str, ...]]:
    matches = [LINE.match(line) for line in stdout.splitlines()]
    assert all(matches), stdout
    return [m.groups() for m in matches if m]


# -- projections status --------------------------------------------------------------------------------------


def test_projections_status_lists_every_projection_and_process_manager_with_module_mode_position_and_lag(
    citadel: Citadel, shop: Shop
) -> None:
    result = citadel("projections", "status", SHOP, "--store", shop.url)

    assert result.returncode == 0, result.stderr
    assert status_rows(result.stdout) == {
        "consumer": ("module", "mode", "position", "lag"),
        **{name: (module, mode, "7", "0") for name, (module, mode) in PROJECTIONS.items()},
        **{name: (module, "process manager", "7", "0") for name, module in PROCESS_MANAGERS.items()},
    }
    assert {"billing.invoicing", "orders.access"} <= PROCESS_MANAGERS.keys()


def test_projections_status_shows_the_lag_of_consumers_that_have_not_run(
    citadel: Citadel, unsettled_shop: Shop
) -> None:
    rows = status_rows(citadel("projections", "status", SHOP, "--store", unsettled_shop.url).stdout)

    assert rows["analytics.OrdersByStatus"] == ("analytics", "async", "0", "3")
    assert rows["billing.invoicing"] == ("billing", "process manager", "0", "3")
    assert rows["orders.OrderSummaries"] == ("orders", "inline", "3", "0")


def test_projections_status_json_prints_one_object_per_consumer_as_the_table_does(
    citadel: Citadel, unsettled_shop: Shop
) -> None:
    table = status_rows(citadel("projections", "status", SHOP, "--store", unsettled_shop.url).stdout)
    result = citadel("projections", "status", SHOP, "--json", "--store", unsettled_shop.url)

    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert set(rows[0]) == {"name", "module", "mode", "position", "lag"}
    assert {row["name"]: (row["module"], row["mode"], str(row["position"]), str(row["lag"])) for row in rows} == {
        name: cells for name, cells in table.items() if name != "consumer"
    }
    invoicing = {"name": "billing.invoicing", "module": "billing", "mode": "process manager", "position": 0, "lag": 3}
    assert invoicing in rows


# -- projections rebuild -------------------------------------------------------------------------------------


def test_rebuilding_one_projection_replays_the_log_into_the_same_view_content(citadel: Citadel, shop: Shop) -> None:
    before = asyncio.run(views(shop))

    result = citadel("projections", "rebuild", SHOP, "analytics.RevenueTotals", "--store", shop.url)

    assert result.returncode == 0, result.stderr
    assert re.search(r"analytics\.RevenueTotals +━+ 7/7 ", result.stdout)
    assert result.stdout.endswith("rebuilt 1 projection(s)\n")
    after = asyncio.run(views(shop))
    assert after["revenue"] == before["revenue"]
    assert (after["revenue"].paid_orders, after["revenue"].revenue) == (1, 1000)


def test_rebuilding_all_projections_leaves_every_query_answer_as_it_was(citadel: Citadel, shop: Shop) -> None:
    before = asyncio.run(views(shop))

    result = citadel("projections", "rebuild", SHOP, "--store", shop.url)

    assert result.returncode == 0, result.stderr
    for name in PROJECTIONS:
        assert re.search(rf"{re.escape(name)} +━+ 7/7 ", result.stdout), name
    assert result.stdout.endswith("rebuilt 7 projection(s)\n")
    assert asyncio.run(views(shop)) == before


def test_rebuilding_a_lagging_async_projection_brings_it_to_the_head(citadel: Citadel, unsettled_shop: Shop) -> None:
    rebuilt = citadel("projections", "rebuild", SHOP, "analytics.OrdersByStatus", "--store", unsettled_shop.url)
    status = citadel("projections", "status", SHOP, "--store", unsettled_shop.url)

    assert rebuilt.returncode == 0, rebuilt.stderr
    assert status_rows(status.stdout)["analytics.OrdersByStatus"] == ("analytics", "async", "3", "0")
    assert status_rows(status.stdout)["analytics.RevenueTotals"] == ("analytics", "async", "0", "3")


def test_rebuilding_an_unknown_projection_exits_2_listing_the_known_names(citadel: Citadel, shop: Shop) -> None:
    result = citadel("projections", "rebuild", SHOP, "analytics.revenue", "--store", shop.url)

    assert result.returncode == 2
    assert result.stdout == ""
    assert " ".join(result.stderr.split()) == (
        "error: no projection named 'analytics.revenue'; known: " + ", ".join(PROJECTIONS)
    )


# -- events tail ---------------------------------------------------------------------------------------------


def test_events_tail_prints_position_time_stream_version_type_actor_and_payload(citadel: Citadel, shop: Shop) -> None:
    result = citadel("events", "tail", SHOP, "--store", shop.url)

    assert result.returncode == 0, result.stderr
    lines = tail_lines(result.stdout)
    assert [(int(line[0]), line[4]) for line in lines] == list(enumerate(TYPES, start=1))
    _, when, stream, version, _, actor, payload = lines[0]
    assert abs(dt.datetime.fromisoformat(when) - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert (stream, version, actor) == (f"user-{shop.user_id}", "1", "anonymous")
    assert json.loads(payload)["email"] == "ada@example.com"
    assert [(line[2].split("-")[0], line[3], line[5]) for line in lines[3:6]] == [
        ("invoice", "1", "system"),
        ("invoice", "2", "anonymous"),
        ("order", "2", "system"),
    ]


def test_events_tail_type_prints_only_events_of_that_type(citadel: Citadel, shop: Shop) -> None:
    lines = tail_lines(citadel("events", "tail", SHOP, "--store", shop.url, "--type", "orders.OrderPaid").stdout)

    assert [(line[0], line[2], line[4]) for line in lines] == [("6", f"order-{shop.order_id}", "orders.OrderPaid")]


def test_events_tail_stream_with_a_trailing_star_prints_the_streams_with_that_prefix(
    citadel: Citadel, shop: Shop
) -> None:
    lines = tail_lines(citadel("events", "tail", SHOP, "--store", shop.url, "--stream", "order-*").stdout)

    assert [(line[2], line[3], line[4]) for line in lines] == [
        (f"order-{shop.order_id}", "1", "orders.OrderCreated"),
        (f"order-{shop.order_id}", "2", "orders.OrderPaid"),
    ]


def test_events_tail_stream_without_a_star_prints_that_stream_only(citadel: Citadel, shop: Shop) -> None:
    lines = tail_lines(citadel("events", "tail", SHOP, "--store", shop.url, "--stream", f"user-{shop.user_id}").stdout)

    assert [line[4] for line in lines] == ["users.UserRegistered"]


def test_events_tail_json_prints_one_json_object_per_line(citadel: Citadel, shop: Shop) -> None:
    result = citadel("events", "tail", SHOP, "--store", shop.url, "--json")

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["position"], e["type"]) for e in events] == list(enumerate(TYPES, start=1))
    assert set(events[2]) == {
        "position", "recorded_at", "stream_id", "version", "type", "actor", "correlation_id", "causation_id", "data",
        "forgotten",
    }  # fmt: skip
    assert not any(e["forgotten"] for e in events)
    assert events[2]["data"]["total"] == 1000
    assert events[5]["causation_id"] is not None


def test_events_tail_last_1_prints_only_the_newest_event(citadel: Citadel, shop: Shop) -> None:
    result = citadel("events", "tail", SHOP, "--store", shop.url, "--last", "1")

    assert [(line[0], line[4]) for line in tail_lines(result.stdout)] == [("7", "content.AccessGranted")]


def test_events_tail_of_a_missing_database_says_so_and_creates_nothing(citadel: Citadel, tmp_path: Path) -> None:
    result = citadel("events", "tail", SHOP, "--store", f"sqlite:///{tmp_path}/missing.db")

    assert result.returncode == 2
    assert "there is no database at" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "missing.db").exists()


def test_events_tail_rejects_a_negative_last(citadel: Citadel, shop: Shop) -> None:
    result = citadel("events", "tail", SHOP, "--store", shop.url, "--last", "-1")

    assert result.returncode == 2


def next_line(lines: queue.Queue[str], deadline: float) -> str:
    return lines.get(timeout=max(0.01, deadline - time.monotonic()))


@contextlib.contextmanager
def following(
    citadel: Citadel, shop: Shop, stderr: Path, *options: str
) -> Iterator[tuple[subprocess.Popen[str], str, queue.Queue[str]]]:
    """Run ``citadel events tail --follow`` in the background; once it has printed its first line (so it has read
    the log and follows it), yield the process, that line and a queue of the next ones. Interrupt it on exit."""
    command = [CITADEL, "events", "tail", SHOP, "--store", shop.url, "--follow", *options]
    lines: queue.Queue[str] = queue.Queue()
    with (
        stderr.open("w") as errors,
        subprocess.Popen(
            # PYTHONFAULTHANDLER: a fatal signal (SIGABRT below) prints every thread's stack on stderr.
            command,
            cwd=REPO,
            env=citadel.env(PYTHONFAULTHANDLER="1"),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        ) as tail,
    ):
        output = tail.stdout
        assert output is not None
        reader = threading.Thread(target=lambda: [lines.put(line) for line in output])
        reader.start()
        try:
            yield tail, next_line(lines, time.monotonic() + 10), lines
        finally:
            if tail.poll() is None:
                tail.send_signal(signal.SIGINT)
            try:
                tail.wait(timeout=10)
            except subprocess.TimeoutExpired:
                tail.kill()
                tail.wait()
            reader.join(timeout=10)


def test_events_tail_follow_prints_events_committed_after_it_started(
    citadel: Citadel, shop: Shop, tmp_path: Path
) -> None:
    with following(citadel, shop, tmp_path / "stderr", "--type", "users.UserRegistered") as (_, first, lines):
        assert "ada@example.com" in first
        asyncio.run(register(shop, "grace@example.com"))
        deadline = time.monotonic() + 10
        seen = next_line(lines, deadline)
        while "grace@example.com" not in seen:
            seen = next_line(lines, deadline)

    assert LINE.match(seen.rstrip("\n")), seen
    assert " users.UserRegistered  by anonymous  " in seen
    assert (tmp_path / "stderr").read_text() == ""


def test_interrupting_events_tail_follow_exits_130_without_a_traceback(
    citadel: Citadel, shop: Shop, tmp_path: Path
) -> None:
    with following(citadel, shop, tmp_path / "stderr") as (tail, _, _):
        tail.send_signal(signal.SIGINT)
        try:
            tail.wait(timeout=10)
        except subprocess.TimeoutExpired:  # seen twice in CI, never reproduced: say where it was stuck
            tail.send_signal(signal.SIGABRT)
            tail.wait(timeout=10)
            pytest.fail(
                f"events tail --follow outlived SIGINT by 10 s; its threads:\n{(tmp_path / 'stderr').read_text()}"
            )

    assert tail.returncode == 130
    assert (tmp_path / "stderr").read_text() == ""
