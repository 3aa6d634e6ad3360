"""Integration events over the real NATS server: an event published straight to JetStream without a valid
signature is never imported, but parked and counted; an imported event lands in the stream its type names, never
in one a header names."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from citadel import Application
from citadel.errors import UnverifiedMessage
from citadel.messaging import wire
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from tests.broker.test_inbox import GetTotals, SetPrice, eventually, release, settled, start

NATS = "nats://127.0.0.1:4222"
Headers = dict[str, str] | Callable[[str, bytes], dict[str, str]]


@pytest.fixture
async def services(
    tmp_path: Path, broker_url: str, keys: ServiceKeys
) -> AsyncIterator[tuple[Application, Application]]:
    """catalog, which exports ``catalog.PriceSet``, and stats, which imports it, sharing ``keys``."""
    catalog = await start(release(1), tmp_path / "catalog.db", ["catalog"], broker_url, keys)
    stats = await start(release(1), tmp_path / "stats.db", ["stats"], broker_url, keys)
    try:
        yield catalog, stats
    finally:
        await stats.stop()
        await catalog.stop()


async def publish_straight(broker_url: str, headers: Headers, price: int = 1_000_000) -> None:
    """Publish a ``catalog.PriceSet`` to JetStream as any client of the NATS server could."""
    subject = f"{NatsBroker(broker_url).prefix}.events.catalog.PriceSet"
    connection = await nats.connect(NATS)
    try:
        body = msgspec.json.encode({"item": "forged", "price": price})
        await connection.jetstream().publish(
            subject, body, headers=headers(subject, body) if callable(headers) else headers
        )
    finally:
        await connection.close()


def refusals(app: Application) -> dict[tuple[str, str], int]:
    broker = app.topology.broker
    assert broker is not None
    return dict(broker.refusals)


async def test_an_event_published_to_jetstream_without_a_valid_signature_is_parked_counted_and_not_imported(
    services: tuple[Application, Application], broker_url: str
) -> None:
    catalog, stats = services
    claims = {wire.EVENT_ID: "forged-1", wire.ACTOR: "system", "Citadel-Stream": "price-totals"}
    await publish_straight(broker_url, claims)
    stranger = ServiceKeys.generate()
    await publish_straight(
        broker_url,
        lambda subject, body: wire.sign(stranger, wire.EVENT, subject, body, {**claims, wire.EVENT_ID: "forged-2"}),
    )

    await catalog.dispatch(SetPrice(item="book", price=5))

    assert await eventually(lambda: stats.query(GetTotals()), bool) == {"prices": 1, "sum": 5}
    await settled(stats)
    letters = await stats.dead_letters()
    assert [(d.consumer, d.event_id) for d in letters] == [
        ("inbox:citadel-inbox-stats", "forged-1"),
        ("inbox:citadel-inbox-stats", "forged-2"),
    ]
    assert all(d.error.startswith("UnverifiedMessage") for d in letters)
    assert refusals(stats) == {("event", "unsigned"): 1, ("event", "unknown-key"): 1}
    assert [r.type for r in await stats.store.read_all(0, 100)] == ["catalog.PriceSet"]


async def test_a_parked_forged_event_stays_parked_when_retried(
    services: tuple[Application, Application], broker_url: str
) -> None:
    _, stats = services
    await publish_straight(broker_url, {wire.EVENT_ID: "forged-1"})
    (letter,) = await eventually(stats.dead_letters, bool)

    with pytest.raises(UnverifiedMessage):
        await stats.retry_dead_letter(letter.id)

    assert [d.id for d in await stats.dead_letters()] == [letter.id]
    assert await stats.store.read_all(0, 100) == []


async def test_an_event_signed_with_an_old_key_imports_after_the_service_holds_it(
    tmp_path: Path, broker_url: str
) -> None:
    old = ServiceKeys.generate()
    new_only = ServiceKeys.parse(old.rotated().setting().split(",")[0])
    catalog = await start(release(1), tmp_path / "catalog.db", ["catalog"], broker_url, old)
    stats = await start(release(1), tmp_path / "stats.db", ["stats"], broker_url, new_only)
    try:
        await catalog.dispatch(SetPrice(item="book", price=5))
        (letter,) = await eventually(stats.dead_letters, bool)
        await stats.stop()

        stats = await start(release(1), tmp_path / "stats.db", ["stats"], broker_url, old.rotated())
        await stats.retry_dead_letter(letter.id)

        assert await eventually(lambda: stats.query(GetTotals()), bool) == {"prices": 1, "sum": 5}
    finally:
        await stats.stop()
        await catalog.stop()


async def test_an_imported_event_lands_in_the_stream_of_its_exporting_module_whatever_a_header_names(
    services: tuple[Application, Application], broker_url: str, keys: ServiceKeys
) -> None:
    catalog, stats = services
    claims: dict[str, Any] = {wire.EVENT_ID: "signed-1", "Citadel-Stream": "price-totals"}
    await publish_straight(broker_url, lambda subject, body: wire.sign(keys, wire.EVENT, subject, body, claims), 7)
    await catalog.dispatch(SetPrice(item="book", price=5))

    assert await eventually(lambda: stats.query(GetTotals()), lambda t: t.get("prices") == 2) == {
        "prices": 2,
        "sum": 12,
    }
    records = await stats.store.read_all(0, 100)
    assert {r.stream_id for r in records} == {"inbox.catalog"}
    assert await stats.store.read_stream("price-totals") == []
    assert refusals(stats) == {}
