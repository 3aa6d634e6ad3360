"""Requests, replies and "published?" questions between services over the real NATS server: forged, tampered,
stale, replayed or signed with a key the receiver does not hold, each one is refused, logged and counted; key
rotation keeps every message flowing."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from citadel import Application
from citadel.context import Actor, DispatchContext
from citadel.errors import ConfigurationError, UnverifiedMessage
from citadel.messaging import wire
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from examples.shop import build_app
from examples.shop.users.contract import GetUser, RegisterUser

NATS = "nats://127.0.0.1:4222"
ADMIN = DispatchContext(actor=Actor("an-admin", frozenset({"admin"})))
Tamper = Callable[[str, bytes, dict[str, str]], tuple[str, bytes, dict[str, str]]]


async def users_service(folder: Path, url: str, keys: ServiceKeys) -> Application:
    """The shop's users module as a service of its own (the other modules run elsewhere)."""
    app = build_app(store=f"sqlite:///{folder / 'users.db'}")
    await app.start(modules=["users"], broker=NatsBroker(url, keys=keys))
    return app


def refusals(app: Application) -> dict[tuple[str, str], int]:
    broker = app.topology.broker
    assert broker is not None
    return dict(broker.refusals)


@pytest.fixture
async def service(tmp_path: Path, broker_url: str, keys: ServiceKeys) -> AsyncIterator[Application]:
    app = await users_service(tmp_path, broker_url, keys)
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def plain(broker_url: str) -> AsyncIterator[Any]:
    """A plain NATS client: whoever can reach the server."""
    connection = await nats.connect(NATS)
    try:
        yield connection
    finally:
        await connection.close()


async def registered(app: Application, email: str = "ada@example.com") -> str:
    return str((await app.dispatch(RegisterUser(email=email, name="Ada"), ADMIN)).user_id)


def get_user(prefix: str, keys: ServiceKeys, user_id: str, **options: Any) -> tuple[str, bytes, dict[str, str]]:
    """A ``GetUser`` request as the user itself would send it through a service holding ``keys``."""
    subject, body = f"{prefix}.rpc.users.GetUser", msgspec.json.encode({"user_id": user_id})
    context = DispatchContext(actor=Actor(user_id, frozenset({"customer"})), causation_id="cause-1")
    headers = wire.headers_of("users.GetUser", context) | options.pop("extra", {})
    return subject, body, wire.sign(keys, wire.REQUEST, subject, body, headers, **options)


def prefix_of(url: str) -> str:
    return NatsBroker(url).prefix


def answered(reply: Any) -> dict[str, Any]:
    assert wire.ERROR not in (reply.headers or {}), reply.data
    return dict(json.loads(reply.data))


def refused(reply: Any) -> str:
    """The text of a refusal answer, checked to be one."""
    assert (reply.headers or {}).get(wire.ERROR) == "UnverifiedMessage", (reply.headers, reply.data)
    return str(reply.data.decode())


TAMPERINGS: dict[str, Tamper] = {
    "actor": lambda s, b, h: (s, b, {**h, wire.ACTOR: "mallory"}),
    "roles": lambda s, b, h: (s, b, {**h, wire.ROLES: "admin,customer"}),
    "body": lambda s, b, h: (s, b.replace(b'"}', b'x"}'), h),
    "type": lambda s, b, h: (s, b, {**h, wire.TYPE: "users.ForgetUser"}),
    "subject": lambda s, b, h: (s.replace("GetUser", "ForgetUser"), b, {**h, wire.TYPE: "users.ForgetUser"}),
    "idempotency key": lambda s, b, h: (s, b, {**h, wire.IDEMPOTENCY: "key-2"}),
    "min_position": lambda s, b, h: (s, b, {**h, wire.MIN_POSITION: "999999"}),
    "position_of": lambda s, b, h: (s, b, {**h, wire.POSITION_OF: "orders"}),
    "wait": lambda s, b, h: (s, b, {**h, wire.WAIT: "30"}),
    "correlation": lambda s, b, h: (s, b, {**h, wire.CORRELATION: "another-correlation"}),
    "causation": lambda s, b, h: (s, b, {**h, wire.CAUSATION: "another-cause"}),
    "message id": lambda s, b, h: (s, b, {**h, wire.MESSAGE_ID: "another-message"}),
    "timestamp": lambda s, b, h: (s, b, {**h, wire.TIMESTAMP: str(int(h[wire.TIMESTAMP]) + 1000)}),
    "signature": lambda s, b, h: (
        s,
        b,
        {**h, wire.SIGNATURE: h[wire.SIGNATURE][:-1] + ("A" if h[wire.SIGNATURE][-1] != "A" else "B")},
    ),
}


@pytest.mark.parametrize("field", list(TAMPERINGS))
async def test_a_request_changed_after_signing_is_refused_and_the_same_request_unchanged_is_answered(
    service: Application, plain: Any, broker_url: str, keys: ServiceKeys, field: str
) -> None:
    user_id = await registered(service)
    subject, body, headers = get_user(prefix_of(broker_url), keys, user_id, extra={wire.IDEMPOTENCY: "key-1"})

    changed = TAMPERINGS[field](subject, body, headers)
    refusal = refused(await plain.request(changed[0], changed[1], headers=changed[2], timeout=5))

    assert "does not match" in refusal
    assert refusals(service) == {("request", "bad-signature"): 1}
    assert answered(await plain.request(subject, body, headers=headers, timeout=5))["email"] == "ada@example.com"


async def test_a_request_signed_with_a_key_the_service_does_not_hold_is_refused_logged_and_counted(
    service: Application, plain: Any, broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = await registered(service)
    stranger = ServiceKeys.generate()
    subject, body, headers = get_user(prefix_of(broker_url), stranger, user_id)

    refusal = refused(await plain.request(subject, body, headers=headers, timeout=5))

    assert "unknown key id" in refusal
    assert refusals(service) == {("request", "unknown-key"): 1}
    (logged,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused a request")]
    assert subject in logged
    assert f"claimed actor {user_id!r}" in logged
    assert f"key id {stranger.current!r}" in logged


@pytest.mark.parametrize(("shift", "reason"), [(-61.0, "stale"), (30.0, "future")])
async def test_a_request_signed_too_long_ago_or_dated_ahead_is_refused(
    service: Application, plain: Any, broker_url: str, keys: ServiceKeys, shift: float, reason: str
) -> None:
    user_id = await registered(service)
    subject, body, headers = get_user(prefix_of(broker_url), keys, user_id, now=time.time() + shift)

    refused(await plain.request(subject, body, headers=headers, timeout=5))

    assert refusals(service) == {("request", reason): 1}


async def test_a_request_without_signature_or_timestamp_is_refused_as_unsigned_or_malformed(
    service: Application, plain: Any, broker_url: str, keys: ServiceKeys
) -> None:
    user_id = await registered(service)
    subject, body, headers = get_user(prefix_of(broker_url), keys, user_id)
    unsigned = {k: v for k, v in headers.items() if k != wire.SIGNATURE}
    undated = {**headers, wire.TIMESTAMP: "yesterday"}

    refused(await plain.request(subject, body, headers=unsigned, timeout=5))
    refused(await plain.request(subject, body, headers=undated, timeout=5))

    assert refusals(service) == {("request", "unsigned"): 1, ("request", "malformed"): 1}


async def test_the_answer_to_a_refused_request_is_signed_and_names_that_request(
    service: Application, plain: Any, broker_url: str, keys: ServiceKeys
) -> None:
    subject, body, headers = get_user(prefix_of(broker_url), ServiceKeys.generate(), "u1")

    reply = await plain.request(subject, body, headers=headers, timeout=5)

    answer = {**reply.headers, wire.IN_REPLY_TO: headers[wire.MESSAGE_ID]}
    assert (
        wire.verify(keys, wire.REPLY, reply.subject, reply.data, answer, max_age=60)[wire.ERROR] == "UnverifiedMessage"
    )


async def test_a_service_holding_the_new_and_the_old_key_accepts_both_and_signs_with_the_new(
    tmp_path: Path, plain: Any, broker_url: str
) -> None:
    old = ServiceKeys.generate()
    both = old.rotated()
    app = await users_service(tmp_path, broker_url, both)
    try:
        user_id = await registered(app)
        for sender in (old, both):
            subject, body, headers = get_user(prefix_of(broker_url), sender, user_id)

            reply = await plain.request(subject, body, headers=headers, timeout=5)

            assert answered(reply)["user_id"] == user_id
            assert reply.headers[wire.SIGNATURE].startswith(f"{both.current}:")
        assert refusals(app) == {}
    finally:
        await app.stop()


async def test_a_service_holding_only_the_new_key_refuses_a_request_signed_with_the_old(
    tmp_path: Path, plain: Any, broker_url: str
) -> None:
    old = ServiceKeys.generate()
    new_only = ServiceKeys.parse(old.rotated().setting().split(",")[0])
    app = await users_service(tmp_path, broker_url, new_only)
    try:
        user_id = await registered(app)
        subject, body, headers = get_user(prefix_of(broker_url), old, user_id)

        refused(await plain.request(subject, body, headers=headers, timeout=5))

        assert refusals(app) == {("request", "unknown-key"): 1}
    finally:
        await app.stop()


def forged_replies(keys: ServiceKeys) -> dict[str, Callable[[Any], dict[str, str]]]:
    """Answers a responder that is not the users service (or replays another answer) might send."""

    def reply(message: Any, signer: ServiceKeys = keys, **changes: str) -> dict[str, str]:
        headers = {wire.IN_REPLY_TO: message.headers[wire.MESSAGE_ID], wire.POSITION: "0", wire.REPLAYED: "0"}
        return wire.sign(signer, wire.REPLY, message.reply, FORGED, headers | changes)

    return {
        "unsigned": lambda m: {wire.POSITION: "0", wire.REPLAYED: "0"},
        "unknown-key": lambda m: reply(m, ServiceKeys.generate()),
        "bad-signature": lambda m: reply(m, **{wire.IN_REPLY_TO: "another-request"}),  # replayed from another
        "stale": lambda m: wire.sign(
            keys, wire.REPLY, m.reply, FORGED, {wire.IN_REPLY_TO: m.headers[wire.MESSAGE_ID]}, now=time.time() - 61
        ),
    }


FORGED = msgspec.json.encode({"user_id": "u1", "email": "mallory@example.com", "name": "M", "roles": ["admin"]})


@pytest.mark.parametrize("reason", ["unsigned", "unknown-key", "bad-signature", "stale"])
async def test_a_forged_or_replayed_reply_fails_the_request_instead_of_returning_its_result(
    plain: Any, broker_url: str, keys: ServiceKeys, reason: str
) -> None:
    make = forged_replies(keys)[reason]

    async def respond(message: Any) -> None:
        await plain.publish(message.reply, FORGED, headers=make(message))

    await plain.subscribe(f"{prefix_of(broker_url)}.rpc.users.GetUser", cb=respond)
    await plain.flush()
    caller = NatsBroker(broker_url, keys=keys)
    await caller.connect()
    try:
        with pytest.raises(UnverifiedMessage):
            await caller.request("users.GetUser", b'{"user_id":"u1"}', ADMIN, retry=False)
        assert caller.refusals == {("reply", reason): 1}
    finally:
        await caller.close()


async def test_a_genuine_reply_from_a_stand_in_holding_the_keys_is_returned(
    plain: Any, broker_url: str, keys: ServiceKeys
) -> None:
    async def respond(message: Any) -> None:
        headers = {wire.IN_REPLY_TO: message.headers[wire.MESSAGE_ID], wire.POSITION: "7", wire.REPLAYED: "0"}
        await plain.publish(message.reply, FORGED, headers=wire.sign(keys, wire.REPLY, message.reply, FORGED, headers))

    await plain.subscribe(f"{prefix_of(broker_url)}.rpc.users.GetUser", cb=respond)
    await plain.flush()
    caller = NatsBroker(broker_url, keys=keys)
    await caller.connect()
    try:
        assert await caller.request("users.GetUser", b'{"user_id":"u1"}', ADMIN, retry=False) == (FORGED, 7, False)
    finally:
        await caller.close()


async def test_an_unsigned_question_whether_a_service_published_is_refused(
    service: Application, plain: Any, broker_url: str
) -> None:
    reply = await plain.request(f"{prefix_of(broker_url)}.published.users", b"0 0", timeout=5)

    refused(reply)
    assert refusals(service) == {("published", "unsigned"): 1}


async def test_a_forged_answer_to_whether_a_service_published_fails_instead_of_counting(
    plain: Any, broker_url: str, keys: ServiceKeys
) -> None:
    async def respond(message: Any) -> None:
        await plain.publish(message.reply, b"999999")

    await plain.subscribe(f"{prefix_of(broker_url)}.published.orders", cb=respond)
    await plain.flush()
    caller = NatsBroker(broker_url, keys=keys)
    await caller.connect()
    try:
        with pytest.raises(UnverifiedMessage):
            await caller.published_through("orders", 5, 0.5)
        assert caller.refusals == {("reply", "unsigned"): 1}
    finally:
        await caller.close()


async def test_a_signed_question_whether_a_service_published_is_answered(
    service: Application, broker_url: str, keys: ServiceKeys
) -> None:
    await registered(service)
    position = await service.store.head_position()
    caller = NatsBroker(broker_url, keys=keys)
    await caller.connect()
    try:
        assert await caller.published_through("users", position, 5.0) is not None
    finally:
        await caller.close()


async def test_a_broker_without_keys_refuses_to_connect_naming_the_settings_that_give_them(broker_url: str) -> None:
    with pytest.raises(ConfigurationError, match="service_key") as refusal:
        await NatsBroker(broker_url).connect()

    assert "service_key_file" in str(refusal.value)
    assert "development mode" in str(refusal.value)


async def test_a_service_given_only_a_broker_url_refuses_to_start(tmp_path: Path, broker_url: str) -> None:
    app = build_app(store=f"sqlite:///{tmp_path / 'users.db'}")

    with pytest.raises(ConfigurationError, match="service keys"):
        await app.start(modules=["users"], broker=broker_url)


async def test_a_query_forwarded_by_another_service_holding_the_keys_is_answered(
    service: Application, tmp_path: Path, broker_url: str, keys: ServiceKeys
) -> None:
    user_id = await registered(service)
    billing = build_app(store=f"sqlite:///{tmp_path / 'billing.db'}")
    await billing.start(modules=["billing"], broker=NatsBroker(broker_url, keys=keys))
    try:
        profile = await billing.query(GetUser(user_id=user_id), ADMIN)
    finally:
        await billing.stop()

    assert profile.email == "ada@example.com"
    assert refusals(service) == {}


async def test_a_signed_request_sent_again_is_refused_as_a_replay(
    service: Application, plain: Any, broker_url: str, keys: ServiceKeys
) -> None:
    user_id = await registered(service)
    subject, body, headers = get_user(prefix_of(broker_url), keys, user_id)

    assert answered(await plain.request(subject, body, headers=headers, timeout=5))["email"] == "ada@example.com"
    refusal = refused(await plain.request(subject, body, headers=headers, timeout=5))

    assert "replay" in refusal
    assert refusals(service) == {("request", "replayed"): 1}
