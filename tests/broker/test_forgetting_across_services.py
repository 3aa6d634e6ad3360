"""Forgetting across services over the real NATS server: an event that declares a data subject crosses the broker
sealed, the importing service asks for the subject's key over a signed request, keeps it in its own key table and
deletes it when the owner announces that it forgot the subject; the key requests and announcements have hostile
twins (unsigned, forged, replayed, asking for a module's key) that get nothing and delete nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.js import api

from citadel import Application, Module
from citadel.errors import ConfigurationError
from citadel.messages import SubjectForgotten
from citadel.messaging import wire
from citadel.messaging.keyshare import unwrap_from_transit
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from citadel.security.encryption import Keyring, MasterKeys, is_sealed
from citadel.store.shared_keys import read_data_keys
from tests.broker.mailing_app import (
    AccountOpened,
    ForgetAccount,
    GetRecipient,
    OpenAccount,
    Pair,
    RecipientForgotten,
    mailing_app,
    two_services,
)
from tests.broker.test_inbox import eventually, settled

NATS = "nats://127.0.0.1:4222"
EMAIL, NAME = "lovelace@example.com", "Augusta Ada King"


@pytest.fixture
async def pair(tmp_path: Path, broker_url: str, keys: ServiceKeys) -> AsyncIterator[Pair]:
    stores = {name: f"sqlite:///{tmp_path / name}.db" for name in ("accounts", "mailing")}
    async with two_services(stores, broker_url, keys) as services:
        yield services


async def open_and_import(pair: Pair) -> str:
    """Open an account and wait until mailing has imported it; return its id."""
    account_id = (await pair.accounts.dispatch(OpenAccount(email=EMAIL, name=NAME))).account_id
    row = await eventually(lambda: pair.mailing.query(GetRecipient(account_id=account_id)), lambda r: r is not None)
    assert row is not None
    assert row.email == EMAIL
    return str(account_id)


async def stored_key(app: Application, account_id: str) -> tuple[str, bytes] | None:
    return (await read_data_keys(app.store, [f"subject:{account_id}"])).get(f"subject:{account_id}")


async def stream(broker_url: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every message of the test's events stream: subject, body, headers."""
    connection = await nats.connect(NATS)
    try:
        js = connection.jetstream()
        name = NatsBroker(broker_url).stream
        last = (await js.stream_info(name)).state.last_seq
        messages = [await js.get_msg(name, sequence) for sequence in range(1, last + 1)]
        return [(m.subject, m.data or b"", dict(m.headers or {})) for m in messages]
    finally:
        await connection.close()


async def ask_plainly(
    broker_url: str, subject: str, body: bytes, headers: dict[str, str]
) -> tuple[bytes, dict[str, str]]:
    connection = await nats.connect(NATS)
    try:
        reply = await connection.request(subject, body, headers=headers, timeout=5)
        return reply.data, dict(reply.headers or {})
    finally:
        await connection.close()


async def test_an_event_with_a_data_subject_crosses_the_broker_sealed_and_the_importing_service_reads_it(
    pair: Pair,
) -> None:
    account_id = await open_and_import(pair)

    [(_subject, body, headers)] = [m for m in await stream(pair.broker) if m[0].endswith("accounts.AccountOpened")]
    assert is_sealed(body)
    assert EMAIL.encode() not in body
    assert NAME.encode() not in body
    assert headers[wire.STREAM] == f"account-{account_id}"
    assert headers[wire.VERSION] == "1"
    imported = (await pair.mailing.store.read_stream("inbox.accounts"))[0]
    assert imported.event == AccountOpened(account_id=account_id, email=EMAIL, name=NAME)
    for app in (pair.accounts, pair.mailing):
        _master_id, wrapped = await stored_key(app, account_id) or ("", b"")
        assert wrapped, "each service keeps the subject's key, wrapped by its own master key"
    keys = pair.mailing.topology.keys
    assert keys is not None
    assert keys.received == 1


async def test_forgetting_deletes_the_key_in_every_service_and_the_importing_read_model_drops_the_row(
    pair: Pair,
) -> None:
    account_id = await open_and_import(pair)

    await pair.accounts.dispatch(ForgetAccount(account_id=account_id))

    assert await eventually(lambda: stored_key(pair.mailing, account_id), lambda k: k == ("", b"")) == ("", b"")
    assert await stored_key(pair.accounts, account_id) == ("", b"")
    assert await pair.mailing.query(GetRecipient(account_id=account_id)) is None
    log = await pair.mailing.store.read_stream("inbox.accounts")
    assert log[0].forgotten
    assert [r.event for r in log[1:]] == [
        t(subject=account_id, key_id=f"subject:{account_id}", module="accounts")
        for t in (SubjectForgotten, RecipientForgotten)
    ]
    announced = [m for m in await stream(pair.broker) if m[0].endswith(".forgotten.accounts")]
    assert [msgspec.json.decode(m[1]) for m in announced] == [{"key_ids": [f"subject:{account_id}"]}]


async def test_a_service_that_was_down_forgets_when_it_is_back(
    tmp_path: Path, broker_url: str, keys: ServiceKeys
) -> None:
    accounts = mailing_app(f"sqlite:///{tmp_path / 'accounts.db'}", Keyring(MasterKeys.generate()))
    mailing_keys = Keyring(MasterKeys.generate())
    mailing = mailing_app(f"sqlite:///{tmp_path / 'mailing.db'}", mailing_keys)
    await accounts.start(modules=["accounts"], broker=NatsBroker(broker_url, keys=keys))
    try:
        await mailing.start(modules=["mailing"], broker=NatsBroker(broker_url, keys=keys))
        account_id = await open_and_import(Pair(accounts, mailing, broker_url, keys))
        await mailing.stop()

        await accounts.dispatch(ForgetAccount(account_id=account_id))
        again = mailing_app(f"sqlite:///{tmp_path / 'mailing.db'}", mailing_keys)
        await again.start(modules=["mailing"], broker=NatsBroker(broker_url, keys=keys))
        try:
            assert await eventually(lambda: stored_key(again, account_id), lambda k: k == ("", b"")) == ("", b"")
            assert await again.query(GetRecipient(account_id=account_id)) is None
        finally:
            await again.stop()
    finally:
        await accounts.stop()


async def test_a_new_service_replaying_the_stream_after_forgetting_never_reads_the_subject(
    pair: Pair, tmp_path: Path
) -> None:
    account_id = await open_and_import(pair)
    await pair.accounts.dispatch(ForgetAccount(account_id=account_id))
    await eventually(lambda: stored_key(pair.mailing, account_id), lambda k: k == ("", b""))
    await pair.mailing.stop()
    connection = await nats.connect(NATS)  # the broker forgets what the inbox took: it replays from the start
    await connection.jetstream().delete_consumer(NatsBroker(pair.broker).stream, "citadel-inbox-mailing")
    await connection.close()

    fresh = mailing_app(f"sqlite:///{tmp_path / 'fresh.db'}", Keyring(MasterKeys.generate()))
    await fresh.start(modules=["mailing"], broker=NatsBroker(pair.broker, keys=pair.keys))
    try:
        await settled(fresh)
        assert fresh.topology.inbox is not None
        assert fresh.topology.inbox.skipped == 1
        assert await fresh.query(GetRecipient(account_id=account_id)) is None
        assert await stored_key(fresh, account_id) == ("", b"")
        assert [r.type for r in await fresh.store.read_stream("inbox.accounts")] == [
            "citadel.SubjectForgotten",
            "mailing.RecipientForgotten",
        ]
    finally:
        await fresh.stop()


async def test_a_key_request_unsigned_or_signed_with_another_key_gets_no_key(pair: Pair) -> None:
    account_id = await open_and_import(pair)
    subject, body = f"{NatsBroker(pair.broker).prefix}.keys.accounts", f"subject:{account_id}".encode()

    unsigned = await ask_plainly(pair.broker, subject, body, {wire.MESSAGE_ID: "q-1"})
    other = wire.sign(ServiceKeys.generate(), wire.KEY, subject, body, {wire.MESSAGE_ID: "q-2"})
    forged = await ask_plainly(pair.broker, subject, body, other)

    for answer, headers in (unsigned, forged):
        assert headers[wire.ERROR] == "UnverifiedMessage"
        assert len(answer) != 12 + 32 + 16
    broker = pair.accounts.topology.broker
    assert broker is not None
    assert broker.refusals[("key", "unsigned")] == 1
    assert broker.refusals[("key", "unknown-key")] == 1
    assert pair.accounts.topology.keys is not None
    assert pair.accounts.topology.keys.given == 1


async def test_a_replayed_key_request_is_refused_and_a_captured_answer_opens_only_with_the_service_key(
    pair: Pair,
) -> None:
    account_id = await open_and_import(pair)
    subject, key_id = f"{NatsBroker(pair.broker).prefix}.keys.accounts", f"subject:{account_id}"
    question = wire.sign(pair.keys, wire.KEY, subject, key_id.encode(), {wire.MESSAGE_ID: "q-captured"})

    wrapped, headers = await ask_plainly(pair.broker, subject, key_id.encode(), question)
    replayed = await ask_plainly(pair.broker, subject, key_id.encode(), question)

    assert wire.ERROR not in headers
    data_key = unwrap_from_transit(pair.keys, pair.keys.current, "q-captured", key_id, wrapped)
    assert len(data_key) == 32
    assert data_key not in wrapped
    with pytest.raises(Exception, match="does not open"):
        unwrap_from_transit(pair.keys.rotated(), pair.keys.current, "q-other", key_id, wrapped)
    assert replayed[1][wire.ERROR] == "UnverifiedMessage"
    assert b"replay" in replayed[0]


@pytest.mark.parametrize("key_id", ["module:accounts", "module:citadel", "subject:" + "x" * 5000, ""])
async def test_only_a_data_subjects_key_is_given(pair: Pair, key_id: str) -> None:
    await open_and_import(pair)
    subject = f"{NatsBroker(pair.broker).prefix}.keys.accounts"
    question = wire.sign(pair.keys, wire.KEY, subject, key_id.encode(), {wire.MESSAGE_ID: "q-module"})

    answer, headers = await ask_plainly(pair.broker, subject, key_id.encode(), question)

    assert headers[wire.ERROR] == "AccessDenied"
    assert b"subject:<id>" in answer


async def test_a_forged_announcement_forgets_nothing_and_is_parked(pair: Pair) -> None:
    account_id = await open_and_import(pair)
    subject = f"{NatsBroker(pair.broker).prefix}.forgotten.accounts"
    body = msgspec.json.encode({"key_ids": [f"subject:{account_id}"]})
    forged = wire.sign(ServiceKeys.generate(), wire.FORGOTTEN, subject, body, {wire.EVENT_ID: "forged-1"})
    connection = await nats.connect(NATS)
    try:
        js = connection.jetstream()
        await js.publish(subject, body, headers={wire.EVENT_ID: "unsigned-1"})
        await js.publish(subject, body, headers=forged)
    finally:
        await connection.close()

    await settled(pair.mailing)
    letters = await eventually(lambda: pair.mailing.store.dead_letters(), lambda found: len(found) == 2)
    assert sorted(letter.event_id for letter in letters) == ["forged-1", "unsigned-1"]
    _master_id, wrapped = await stored_key(pair.mailing, account_id) or ("", b"")
    assert wrapped
    assert await pair.mailing.query(GetRecipient(account_id=account_id)) is not None


async def test_in_one_process_forgetting_drops_the_row_another_module_keeps(tmp_path: Path) -> None:
    app = mailing_app(f"sqlite:///{tmp_path / 'one.db'}", Keyring(MasterKeys.generate()))
    async with app:
        account_id = (await app.dispatch(OpenAccount(email=EMAIL, name=NAME))).account_id
        assert await app.query(GetRecipient(account_id=account_id)) is not None

        await app.dispatch(ForgetAccount(account_id=account_id))

        assert await app.query(GetRecipient(account_id=account_id)) is None
        assert [r.type for r in await app.store.read_stream("citadel.forgotten.accounts")] == [
            "citadel.SubjectForgotten",
            "mailing.RecipientForgotten",
        ]


async def test_rebuilding_the_importing_read_model_after_forgetting_brings_no_row_back(pair: Pair) -> None:
    account_id = await open_and_import(pair)
    await pair.accounts.dispatch(ForgetAccount(account_id=account_id))
    await eventually(lambda: stored_key(pair.mailing, account_id), lambda k: k == ("", b""))

    await pair.mailing.rebuild_projection("mailing.Recipients")

    assert await pair.mailing.query(GetRecipient(account_id=account_id)) is None


@pytest.mark.parametrize("service", ["accounts", "mailing"])
async def test_a_service_without_encryption_at_rest_may_not_export_or_import_a_subjects_events(
    tmp_path: Path, broker_url: str, keys: ServiceKeys, service: str
) -> None:
    app = mailing_app(f"sqlite:///{tmp_path / service}.db")

    with pytest.raises(ConfigurationError, match="declare a data subject: it needs encryption at rest"):
        await app.start(modules=[service], broker=NatsBroker(broker_url, keys=keys))


async def made_before_announcements(broker_url: str, keys: ServiceKeys, **config: object) -> str:
    """Make mailing's inbox consumer as an earlier version did: on the events only; return the namespace."""
    broker = NatsBroker(broker_url, keys=keys)
    await broker.connect()
    try:
        old = api.ConsumerConfig(durable_name="citadel-inbox-mailing", filter_subject=f"{broker.prefix}.events.>")
        await broker.js.add_consumer(broker.stream, api.ConsumerConfig.from_response({**old.as_dict(), **config}))
    finally:
        await broker.close()
    return broker.prefix


async def test_an_inbox_consumer_made_before_announcements_existed_takes_them_after_the_next_start(
    tmp_path: Path, broker_url: str, keys: ServiceKeys
) -> None:
    prefix = await made_before_announcements(broker_url, keys)

    app = mailing_app(f"sqlite:///{tmp_path / 'mailing.db'}", Keyring(MasterKeys.generate()))
    await app.start(modules=["mailing"], broker=NatsBroker(broker_url, keys=keys))
    try:
        broker = app.topology.broker
        assert broker is not None
        config = (await broker.js.consumer_info(broker.stream, "citadel-inbox-mailing")).config
        filters = [*(config.filter_subjects or ()), *([config.filter_subject] if config.filter_subject else [])]
        assert not filters or f"{prefix}.forgotten.accounts" in filters
    finally:
        await app.stop()


async def test_an_inbox_consumer_the_server_will_not_update_is_reported(
    tmp_path: Path, broker_url: str, keys: ServiceKeys, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = await made_before_announcements(broker_url, keys, deliver_policy="new")  # not changeable: kept
    caplog.set_level(logging.WARNING, logger="citadel.nats")

    app = mailing_app(f"sqlite:///{tmp_path / 'mailing.db'}", Keyring(MasterKeys.generate()))
    await app.start(modules=["mailing"], broker=NatsBroker(broker_url, keys=keys))
    await app.stop()

    [warning] = [r.getMessage() for r in caplog.records if "inbox consumer" in r.getMessage()]
    assert f"{prefix}.forgotten.accounts" in warning
    assert "delete it once" in warning


def test_a_module_event_recording_a_forgotten_subject_may_not_declare_a_subject() -> None:
    class Noted(SubjectForgotten, name="notes.Noted", subject="subject"):
        pass

    with pytest.raises(ConfigurationError, match="Noted records a forgotten subject: it declares no subject="):
        Application([Module("notes", events=[Noted])])
