"""``projections status`` and ``events tail`` on SQLite and on PostgreSQL (whose positions are not dense): lag is a
count of events, ``--last N`` prints the last N events, and an encrypted shop's payloads are printed opened (a
forgotten subject's as ``<forgotten>``).

The shop is settled (seven events, every consumer at the seventh), then falls behind by ``BEHIND`` events
written with no consumer running: users registered, and the seeded user forgotten.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest

from citadel.cli.operating import FORGOTTEN
from tests.backends import BACKENDS, clean_store_url

from .conftest import Citadel
from .shop_data import Shop, fall_behind, log_positions, seed

SHOP = "examples.shop:app"
EMAILS = ["grace@example.com", "alan@example.com", "barbara@example.com", "edsger@example.com"]
BEHIND = len(EMAILS) + 2
"""The events written after the consumers stopped: a registration per email, and the forgetting's two (the
user's ``users.UserForgotten`` and the framework's ``citadel.SubjectForgotten``)."""
TYPES = [
    "users.UserRegistered",
    "content.ContentPublished",
    "orders.OrderCreated",
    "billing.InvoiceOpened",
    "billing.InvoicePaid",
    "orders.OrderPaid",
    "content.AccessGranted",
    *["users.UserRegistered"] * len(EMAILS),
    "users.UserForgotten",
    "citadel.SubjectForgotten",
]
"""The types of the lagging shop's log, in order."""
ASYNC = ("analytics.RevenueTotals", "analytics.OrdersByStatus")
# position, recorded_at, stream@version, type, actor, payload
LINE = re.compile(r"^ *(\d+)  (\S+)  (\S+)@(\d+)  (\S+)  by (\S+)  (.*)$")


@pytest.fixture(params=BACKENDS)
def lagging(request: pytest.FixtureRequest, tmp_path: Path, master_keys: Path) -> Shop:
    """A settled shop, encrypted, whose async consumers are ``BEHIND`` events behind its head."""
    url = asyncio.run(clean_store_url(str(request.param), tmp_path))
    shop = asyncio.run(seed(url, master_keys))
    asyncio.run(fall_behind(shop, EMAILS))
    return shop


def run(citadel: Citadel, shop: Shop, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command on ``shop``'s store with its master keys, on a terminal wide enough for every table cell."""
    result = citadel(*args, SHOP, "--store", shop.url, CITADEL_MASTER_KEY_FILE=str(shop.keys), COLUMNS="200")
    assert result.returncode == 0, result.stderr
    return result


def status_rows(stdout: str) -> dict[str, tuple[str, ...]]:
    """The rows of the status table, by consumer name: (module, mode, position, lag)."""
    lines = [line for line in stdout.splitlines() if line[:1] in "│┃"]
    rows = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]] for line in lines]
    return {row[0]: tuple(row[1:]) for row in rows}


def tail_lines(stdout: str) -> list[tuple[str, ...]]:
    matches = [LINE.match(line) for line in stdout.splitlines()]
    assert all(matches), stdout
    return [m.groups() for m in matches if m]


def test_status_shows_each_async_consumer_behind_by_the_events_written_since(citadel: Citadel, lagging: Shop) -> None:
    positions = asyncio.run(log_positions(lagging))
    rows = status_rows(run(citadel, lagging, "projections", "status").stdout)

    assert len(positions) == 7 + BEHIND
    settled = str(positions[6])
    for name in ASYNC:
        assert rows[name] == ("analytics", "async", settled, str(BEHIND))
    assert rows["billing.invoicing"] == ("billing", "process manager", settled, str(BEHIND))
    assert rows["users.Users"] == ("users", "inline", str(positions[-1]), "0")


def test_status_json_gives_the_same_lags_as_numbers(citadel: Citadel, lagging: Shop) -> None:
    positions = asyncio.run(log_positions(lagging))
    rows = {
        row["name"]: row
        for row in map(json.loads, run(citadel, lagging, "projections", "status", "--json").stdout.splitlines())
    }

    lags = {name: (rows[name]["position"], rows[name]["lag"]) for name in ASYNC}
    assert lags == dict.fromkeys(ASYNC, (positions[6], BEHIND))
    managers = [row for row in rows.values() if row["mode"] == "process manager"]
    assert managers
    assert all(row["lag"] == BEHIND for row in managers)
    assert all(row["lag"] == 0 for row in rows.values() if row["mode"] == "inline")


@pytest.mark.parametrize("last", [1, 4, BEHIND + 1])
def test_tail_last_n_prints_the_last_n_events_opened_in_order(citadel: Citadel, lagging: Shop, last: int) -> None:
    positions = asyncio.run(log_positions(lagging))

    lines = tail_lines(run(citadel, lagging, "events", "tail", "--last", str(last)).stdout)

    assert [int(line[0]) for line in lines] == positions[-last:]
    assert [line[4] for line in lines] == TYPES[-last:]
    registered = [json.loads(line[6])["email"] for line in lines if line[4] == "users.UserRegistered"]
    assert registered == EMAILS[len(EMAILS) - len(registered) :]


def test_tail_json_prints_one_parsable_object_per_event_with_its_data_opened(citadel: Citadel, lagging: Shop) -> None:
    positions = asyncio.run(log_positions(lagging))

    result = run(citadel, lagging, "events", "tail", "--json", "--last", str(BEHIND))

    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["position"] for e in events] == positions[-BEHIND:]
    assert [e["data"]["email"] for e in events[:-2]] == EMAILS
    assert [e["type"] for e in events[-2:]] == TYPES[-2:]
    assert not any(e["forgotten"] for e in events)


def test_tail_prints_a_forgotten_subjects_payload_as_forgotten_and_the_others_opened(
    citadel: Citadel, lagging: Shop
) -> None:
    text = tail_lines(run(citadel, lagging, "events", "tail", "--last", "100").stdout)
    rows = [json.loads(line) for line in run(citadel, lagging, "events", "tail", "--json").stdout.splitlines()]

    assert len(text) == len(rows) == 7 + BEHIND
    assert (text[0][4], text[0][6]) == ("users.UserRegistered", FORGOTTEN)
    assert (rows[0]["data"], rows[0]["forgotten"]) == (None, True)
    assert [line[6] for line in text[1:]].count(FORGOTTEN) == 0
    assert json.loads(text[1][6])["title"] == "Notes"
    assert all(json.loads(line[6]) for line in text[1:])  # every other payload is opened JSON, not sealed bytes
