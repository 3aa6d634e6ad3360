"""The outbox relay and the inbox over the real NATS server: duplicate publishes, redelivery of what was
already imported, and a poison message parked as a dead letter, then retried once its cause is fixed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest

from citadel import Application, Command, CommandContext, Event, Module, Projector, Query, QueryContext, View
from citadel.errors import NotFound
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
CITADEL = str(Path(sys.executable).parent / "citadel")
TOTALS = View[dict[str, int]]("price_totals")


class SetPrice(Command, name="catalog.SetPrice"):
    item: str
    price: int


class GetTotals(Query, name="stats.GetTotals"):
    pass


def release(version: int) -> Application:
    """The application (catalog and stats) as one release builds it: release 2 adds ``currency`` to
    ``catalog.PriceSet`` (version 2); release 1 knows only version 1."""

    class PriceSet(Event, name="catalog.PriceSet", version=version):
        item: str
        price: int
        currency: str = "EUR"

    async def set_price(command: SetPrice, ctx: CommandContext) -> None:
        ctx.append(f"price-{command.item}-{ctx.new_id()}", [PriceSet(item=command.item, price=command.price)])

    stats = Projector("stats.totals", views=[TOTALS], inline=False)

    @stats.on(PriceSet)
    def count(event: PriceSet, ctx: Any) -> None:
        ctx.view(TOTALS).increment("all", "prices", 1)
        ctx.view(TOTALS).increment("all", "sum", event.price)

    async def get_totals(query: GetTotals, ctx: QueryContext) -> dict[str, int]:
        return dict(await ctx.view(TOTALS).get("all") or {})

    catalog = Module("catalog", contract=[SetPrice, PriceSet], commands={SetPrice: set_price}, events=[PriceSet])
    counting = Module(
        "stats", contract=[GetTotals], queries={GetTotals: get_totals}, projections=[stats], depends_on=["catalog"]
    )
    return Application([catalog, counting])


def release_1() -> Application:
    return release(1)


def release_2() -> Application:
    return release(2)


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 15.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if done(value) or loop.time() >= deadline:
            return value
        await asyncio.sleep(0.02)


async def settled(app: Application) -> None:
    """Wait until the app's inbox has nothing pending and its consumers are at its head."""
    inbox = app.topology.inbox
    assert inbox is not None

    async def quiet() -> bool:
        head = await app.store.head_position()
        return await inbox.pending() == 0 and all(c.position >= head for c in app.consumers.values())

    assert await eventually(quiet, bool), "the service did not settle"


async def start(app: Application, store: Path, modules: list[str], broker: str, keys: ServiceKeys) -> Application:
    await app.start(store=f"sqlite:///{store}", modules=modules, broker=NatsBroker(broker, keys=keys))
    return app


async def stream_messages(broker_url: str, keys: ServiceKeys) -> int:
    broker = NatsBroker(broker_url, keys=keys)
    await broker.connect()
    try:
        return int((await broker.js.stream_info(broker.stream)).state.messages)
    finally:
        await broker.close()


async def test_events_published_twice_with_one_message_id_are_stored_and_imported_once(
    broker_url: str, tmp_path: Path, keys: ServiceKeys
) -> None:
    catalog = await start(release(1), tmp_path / "catalog.db", ["catalog"], broker_url, keys)
    stats = await start(release(1), tmp_path / "stats.db", ["stats"], broker_url, keys)
    try:
        for price in (100, 200, 300):
            await catalog.dispatch(SetPrice(item="book", price=price))
        assert await eventually(lambda: stats.query(GetTotals()), lambda t: t.get("prices") == 3) == {
            "prices": 3,
            "sum": 600,
        }

        again = NatsBroker(
            broker_url, keys=keys
        )  # the relay, crashed after publishing and before its checkpoint: again
        await again.connect()
        await again.publish_events(await catalog.store.read_all(0, 100))
        await again.close()

        assert await stream_messages(broker_url, keys) == 3
        await settled(stats)
        assert await stats.query(GetTotals()) == {"prices": 3, "sum": 600}
        assert len(await stats.store.read_all(0, 100)) == 3
    finally:
        await stats.stop()
        await catalog.stop()


async def test_messages_delivered_again_after_they_were_imported_change_nothing(
    broker_url: str, tmp_path: Path, keys: ServiceKeys
) -> None:
    catalog = await start(release(1), tmp_path / "catalog.db", ["catalog"], broker_url, keys)
    stats = await start(release(1), tmp_path / "stats.db", ["stats"], broker_url, keys)
    try:
        for price in (1, 2, 3, 4):
            await catalog.dispatch(SetPrice(item="pen", price=price))
        await eventually(lambda: stats.query(GetTotals()), lambda t: t.get("prices") == 4)
        inbox = stats.topology.inbox
        assert inbox is not None
        durable = inbox.durable
        await stats.stop()

        # The broker forgets what the inbox acknowledged: every message is delivered again from the start.
        connection = await nats.connect(broker_url.rsplit("/", 1)[0])
        await connection.jetstream().delete_consumer(NatsBroker(broker_url).stream, durable)
        await connection.close()
        stats = await start(release(1), tmp_path / "stats.db", ["stats"], broker_url, keys)
        await catalog.dispatch(SetPrice(item="pen", price=5))

        assert await eventually(lambda: stats.query(GetTotals()), lambda t: t.get("prices") == 5) == {
            "prices": 5,
            "sum": 15,
        }
        await settled(stats)
        assert await stats.query(GetTotals()) == {"prices": 5, "sum": 15}
        assert len(await stats.store.read_all(0, 100)) == 5
    finally:
        await stats.stop()
        await catalog.stop()


async def test_a_message_this_service_cannot_read_is_parked_and_imported_by_retry_once_fixed(
    broker_url: str, tmp_path: Path, keys: ServiceKeys
) -> None:
    catalog = await start(release(2), tmp_path / "catalog.db", ["catalog"], broker_url, keys)  # upgraded first
    stats = await start(release(1), tmp_path / "stats.db", ["stats"], broker_url, keys)  # not yet
    try:
        await catalog.dispatch(SetPrice(item="lamp", price=40))

        letters = await eventually(stats.dead_letters, bool)
        (letter,) = letters
        assert letter.consumer == "inbox:citadel-inbox-stats"
        assert letter.attempts == 5
        assert "newer than this code's version" in letter.error
        await settled(stats)  # parked and acknowledged: the inbox moves on
        assert await stats.query(GetTotals()) == {}
        await stats.stop()

        listed = run_cli("list", "release_1", tmp_path / "stats.db", broker_url, keys)
        assert listed.returncode == 0, listed.stderr
        assert "inbox:citadel-inbox-stats" in listed.stdout
        still_old = run_cli("retry", "release_1", tmp_path / "stats.db", broker_url, keys, str(letter.id))
        assert still_old.returncode == 2
        assert "stays parked" in still_old.stderr

        fixed = run_cli("retry", "release_2", tmp_path / "stats.db", broker_url, keys, str(letter.id))  # deployed
        assert fixed.returncode == 0, fixed.stderr
        stats = await start(release(2), tmp_path / "stats.db", ["stats"], broker_url, keys)
        assert await eventually(lambda: stats.query(GetTotals()), bool) == {"prices": 1, "sum": 40}
        assert await stats.dead_letters() == []
        with pytest.raises(NotFound):
            await stats.retry_dead_letter(letter.id)
    finally:
        await stats.stop()
        await catalog.stop()


def run_cli(
    action: str, release_name: str, store: Path, broker: str, keys: ServiceKeys, *args: str
) -> subprocess.CompletedProcess[str]:
    """``citadel dead-letters ACTION`` on the stats service of ``release_name``, holding ``keys``."""
    command = [CITADEL, "dead-letters", action, f"tests.broker.test_inbox:{release_name}", *args]
    options = ["--store", f"sqlite:///{store}", "--modules", "stats", "--broker", broker]
    wide = {**os.environ, "COLUMNS": "250", "CITADEL_SERVICE_KEY": keys.setting()}  # rows on one line each
    wide["CITADEL_ENCRYPT"] = "false"  # the services of these tests keep plain payloads
    return subprocess.run(
        [*command, *options], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False, env=wide
    )


async def test_an_application_restarted_in_one_process_handles_what_it_forwarded_before(
    broker_url: str, tmp_path: Path, keys: ServiceKeys
) -> None:
    app = await start(release(1), tmp_path / "stats.db", ["stats"], broker_url, keys)
    await app.stop()  # it forwarded catalog's commands to a catalog service; no such service now

    await app.start(store=f"sqlite:///{tmp_path / 'stats.db'}")
    try:
        await app.dispatch(SetPrice(item="desk", price=70))  # handled here, not forwarded
        assert len(await app.store.read_all(0, 100)) == 1
    finally:
        await app.stop()
