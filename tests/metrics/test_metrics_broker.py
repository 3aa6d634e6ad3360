"""What crosses the real NATS server (127.0.0.1:4222) shows in ``/metrics``: events the relay published and the
inbox imported."""

from __future__ import annotations

from pathlib import Path

from scraping import scrape, served, value

from citadel.messaging.signing import ServiceKeys
from tests.broker.conftest import broker_url, keys
from tests.broker.test_inbox import GetTotals, SetPrice, eventually, release, settled, start

__all__ = ["broker_url", "keys"]  # the fixtures


async def test_events_published_by_one_service_and_imported_by_another_are_counted(
    broker_url: str, tmp_path: Path, keys: ServiceKeys
) -> None:
    catalog = await start(release(1), tmp_path / "catalog.db", ["catalog"], broker_url, keys)
    stats = await start(release(1), tmp_path / "stats.db", ["stats"], broker_url, keys)
    try:
        async with served(stats) as client:
            before = await scrape(client)
            for price in (100, 200, 300):
                await catalog.dispatch(SetPrice(item="book", price=price))
            await eventually(lambda: stats.query(GetTotals()), lambda t: t.get("prices") == 3)
            await settled(stats)
            after = await scrape(client)
    finally:
        await stats.stop()
        await catalog.stop()
    for name in ("citadel_relay_published_total", "citadel_inbox_imported_total"):
        assert value(after, name) - value(before, name) == 3, name
