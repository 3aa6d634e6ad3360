"""``citadel dead-letters list`` on a seeded shop: every letter whole, wrapped to the terminal, or one JSON object
per line; and ``events tail --json`` of a forgotten subject's events.

Letters are parked in-process the way a consumer parks one when it gives up (``add_dead_letter``).
"""

from __future__ import annotations

import asyncio
import json

from examples.shop.users.contract import ForgetUser

from .conftest import Citadel
from .shop_data import Shop, shop_on

SHOP = "examples.shop:app"
LONG_ERROR = "RuntimeError: the mail relay refused the message " + "after a long wait " * 8 + "(end)"
MARKUP_ERROR = "KeyError: '[bold red]oops[/]' is not a known template"


async def park(shop: Shop, *errors: str) -> None:
    """Park the shop's first event for ``billing.invoicing`` once per error, as the consumer does on giving up."""
    app = shop_on(shop.url, shop.keys)
    await app.start(consumers=False)
    try:
        (record,) = await app.store.read_all(1, 1)
        for error in errors:
            await app.store.add_dead_letter("billing.invoicing", record, error, 5)
    finally:
        await app.stop()


async def forget(shop: Shop) -> None:
    app = shop_on(shop.url, shop.keys)
    await app.start(consumers=False)
    try:
        await app.dispatch(ForgetUser(user_id=shop.user_id))
    finally:
        await app.stop()


def test_dead_letters_list_prints_each_letter_whole_wrapped_to_the_terminal(citadel: Citadel, shop: Shop) -> None:
    asyncio.run(park(shop, LONG_ERROR, MARKUP_ERROR))

    result = citadel("dead-letters", "list", SHOP, "--store", shop.url)

    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("\n\n")
    lines = first.splitlines()
    assert lines[0] == "dead letter 1  billing.invoicing  position 1  5 attempts"
    assert lines[1].startswith("  event ")
    assert len(lines) > 3  # the error did not fit on one line
    assert " ".join(line.strip() for line in lines[2:]) == LONG_ERROR
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert second.splitlines()[2] == f"  {MARKUP_ERROR}"  # printed as written, not as markup


def test_dead_letters_list_json_prints_one_object_per_letter(citadel: Citadel, shop: Shop) -> None:
    asyncio.run(park(shop, LONG_ERROR, MARKUP_ERROR))

    result = citadel("dead-letters", "list", SHOP, "--json", "--store", shop.url)

    assert result.returncode == 0, result.stderr
    letters = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(letter["id"], letter["error"]) for letter in letters] == [(1, LONG_ERROR), (2, MARKUP_ERROR)]
    assert set(letters[0]) == {"id", "consumer", "position", "event_id", "attempts", "parked_at", "error"}
    assert (letters[0]["consumer"], letters[0]["position"], letters[0]["attempts"]) == ("billing.invoicing", 1, 5)
    assert letters[0]["parked_at"].endswith("+00:00")


def test_dead_letters_list_json_without_letters_prints_nothing(citadel: Citadel, shop: Shop) -> None:
    result = citadel("dead-letters", "list", SHOP, "--json", "--store", shop.url)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_events_tail_json_prints_a_forgotten_subjects_events_without_their_data(citadel: Citadel, shop: Shop) -> None:
    asyncio.run(forget(shop))

    result = citadel("events", "tail", SHOP, "--json", "--store", shop.url)

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    registered = next(e for e in events if e["type"] == "users.UserRegistered")
    assert (registered["data"], registered["forgotten"]) == (None, True)
    published = next(e for e in events if e["type"] == "content.ContentPublished")
    assert (published["data"]["title"], published["forgotten"]) == ("Notes", False)
