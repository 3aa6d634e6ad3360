"""What each service's NATS user may do, enforced by NATS itself: a service that is broken into (its password
stolen, its code changed) cannot forge another module's events, call a module it has no business with, answer
in another module's place or read another service's replies. NATS refuses each with a permissions violation,
reported to the client asynchronously (its error callback), and the message never reaches the subscribers of
the target subject; what the service is allowed to do still works."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.broker.secured import Secured, inbox_of, secured_server

SETTLE = 0.5  # seconds to let a message that would arrive, arrive


@pytest.fixture(scope="module")
def secured() -> Iterator[Secured]:
    with secured_server() as running:
        yield running


@pytest.fixture
async def watcher(secured: Secured) -> AsyncIterator[tuple[Client, list[Msg]]]:
    """A user allowed everything, subscribed to every subject of the shop: what NATS delivers, it sees."""
    seen: list[Msg] = []

    async def note(message: Msg) -> None:
        seen.append(message)

    client = await secured.client("watcher", [])
    await client.subscribe("shop.>", cb=note)
    await client.flush()
    try:
        yield client, seen
    finally:
        await client.close()


@pytest.fixture
async def billing(secured: Secured) -> AsyncIterator[tuple[Client, list[Exception]]]:
    """A plain client with billing's credentials, as whoever stole them would use them."""
    errors: list[Exception] = []
    client = await secured.client("billing", errors, inbox_prefix=inbox_of("billing"))
    try:
        yield client, errors
    finally:
        await client.close()


async def published(client: Client, subject: str) -> None:
    await client.publish(subject, b'{"forged": true}')
    await client.flush()
    await asyncio.sleep(SETTLE)


def violations(errors: list[Exception], kind: str, subject: str) -> list[str]:
    """NATS's refusals to ``kind`` (publish, subscription) on ``subject``."""
    wanted = f'permissions violation for {kind} to "{subject}'.lower()
    return [str(e) for e in errors if wanted in str(e).lower()]


async def test_a_service_publishes_its_own_modules_events(
    billing: tuple[Client, list[Exception]], watcher: tuple[Client, list[Msg]]
) -> None:
    (client, errors), (shop, seen) = billing, watcher
    for _ in range(3):  # a busy machine may drop nothing, but a retry tells a slow delivery from a refusal
        await published(client, "shop.events.billing.InvoiceOpened")
        for _ in range(100):  # delivered, however busy the machine (an absence is only waited for SETTLE)
            if seen:
                break
            await asyncio.sleep(0.05)
        if seen:
            break
    why = f"errors: {errors}; watcher connected: {shop.is_connected}; billing connected: {client.is_connected}"
    assert {m.subject for m in seen} == {"shop.events.billing.InvoiceOpened"}, why
    assert errors == []


async def test_a_service_cannot_forge_another_modules_events(
    billing: tuple[Client, list[Exception]], watcher: tuple[Client, list[Msg]]
) -> None:
    (client, errors), (_, seen) = billing, watcher
    await published(client, "shop.events.orders.OrderCreated")
    assert violations(errors, "publish", "shop.events.orders.OrderCreated")
    assert seen == []


async def test_a_service_cannot_call_a_module_it_has_no_business_with(
    billing: tuple[Client, list[Exception]], watcher: tuple[Client, list[Msg]]
) -> None:
    (client, errors), (_, seen) = billing, watcher
    await published(client, "shop.rpc.users.AssignRole")  # billing calls orders, never users
    assert violations(errors, "publish", "shop.rpc.users.AssignRole")
    assert seen == []


async def test_a_service_cannot_answer_in_another_modules_place(
    billing: tuple[Client, list[Exception]], watcher: tuple[Client, list[Msg]]
) -> None:
    (client, errors), (shop, _) = billing, watcher
    stolen: list[Msg] = []

    async def steal(message: Msg) -> None:
        stolen.append(message)

    await client.subscribe("shop.rpc.orders.>", queue="shop.orders", cb=steal)
    await client.flush()
    await asyncio.sleep(SETTLE)
    await shop.publish("shop.rpc.orders.CreateOrder", b"{}")
    await shop.flush()
    await asyncio.sleep(SETTLE)
    assert violations(errors, "subscription", "shop.rpc.orders.>")
    assert stolen == []


async def test_a_service_cannot_read_another_services_replies(
    billing: tuple[Client, list[Exception]], watcher: tuple[Client, list[Msg]]
) -> None:
    (client, errors), (shop, _) = billing, watcher
    overheard: list[Msg] = []

    async def overhear(message: Msg) -> None:
        overheard.append(message)

    await client.subscribe(f"{inbox_of('shop')}.>", cb=overhear)
    await client.flush()
    await asyncio.sleep(SETTLE)
    await shop.publish(f"{inbox_of('shop')}.reply", b"the user's e-mail address")
    await shop.flush()
    await asyncio.sleep(SETTLE)
    assert violations(errors, "subscription", inbox_of("shop"))
    assert overheard == []


async def test_a_service_cannot_reply_to_what_it_was_not_asked(billing: tuple[Client, list[Exception]]) -> None:
    client, errors = billing
    await published(client, f"{inbox_of('shop')}.forged-reply")  # allow_responses: only to requests it received
    assert violations(errors, "publish", inbox_of("shop"))


async def test_a_service_answers_the_requests_for_its_own_modules(
    secured: Secured, billing: tuple[Client, list[Exception]]
) -> None:
    """Billing's user serves billing's requests (and replies to them); the shop's user asks and hears back."""
    client, errors = billing
    asked: list[str] = []

    async def answer(message: Msg) -> None:
        asked.append(message.subject)
        await message.respond(b"ok")

    await client.subscribe("shop.rpc.billing.>", queue="shop.billing", cb=answer)
    await client.flush()
    shop = await secured.client("shop", errors, inbox_prefix=inbox_of("shop"))
    try:
        reply = await shop.request("shop.rpc.billing.GetInvoice", b"{}", timeout=2)
    finally:
        await shop.close()
    assert reply.data == b"ok"
    assert asked == ["shop.rpc.billing.GetInvoice"]
    assert errors == []
