"""Trust between services, end to end over HTTP and the real NATS server: a plain NATS client that claims to be an
administrator reads and forgets nothing, and a remote service's unexpected error reaches the HTTP client without
its text, logged on both sides with the request's correlation id."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest
from deployments import NATS, Deployment, broker_namespace, drop_namespace, three_services
from shopper import ok, over_http, problem, register

from citadel import Application, Command, CommandContext, Module
from citadel.context import Actor, DispatchContext
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from examples.shop.users.contract import GetUser

SECRET_TEXT = "the vault's password is hunter2"


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with three_services(tmp_path, broker_namespace()) as deployed:
        yield deployed


async def test_a_plain_nats_client_claiming_an_admin_can_neither_read_nor_forget_a_user(shop: Deployment) -> None:
    assert shop.broker is not None
    prefix = NatsBroker(shop.broker).prefix
    async with over_http(shop.entry) as client:
        user_id = await register(client, "victim@example.com", "Victim")
        forged = {"Citadel-Actor": "mallory", "Citadel-Roles": "admin"}
        body = msgspec.json.encode({"user_id": user_id})
        connection = await nats.connect(NATS)
        try:
            read = await connection.request(
                f"{prefix}.rpc.users.GetUser", body, headers={"Citadel-Type": "users.GetUser", **forged}, timeout=5
            )
            forget = await connection.request(
                f"{prefix}.rpc.users.ForgetUser",
                body,
                headers={"Citadel-Type": "users.ForgetUser", **forged},
                timeout=5,
            )
        finally:
            await connection.close()

        for answer in (read, forget):
            assert answer.headers["Citadel-Error"] == "UnverifiedMessage"
            assert b"victim" not in answer.data
        profile = ok(await client.get("/users/user", params={"user_id": user_id}))
        assert (profile["email"], profile["name"], profile["forgotten"]) == ("victim@example.com", "Victim", False)

    admin = DispatchContext(actor=Actor("an-admin", frozenset({"admin"})))
    forwarded = await shop.services["billing"].query(GetUser(user_id=user_id), admin)  # signed, over NATS
    assert forwarded.email == "victim@example.com"
    broker = shop.entry.topology.broker
    assert broker is not None
    assert dict(broker.refusals) == {("request", "unsigned"): 2}


class OpenVault(Command, name="vault.OpenVault"):
    door: str


async def open_vault(command: OpenVault, ctx: CommandContext) -> None:
    raise RuntimeError(SECRET_TEXT)


def vault_app(store: str) -> Application:
    """Two modules: ``vault``, whose command fails unexpectedly, and ``front``, which clients talk to."""
    vault = Module("vault", contract=[OpenVault], commands={OpenVault: open_vault})
    return Application([vault, Module("front")], store=store)


@contextlib.asynccontextmanager
async def vault_and_front(folder: Path, front_keys: ServiceKeys | None = None) -> AsyncIterator[Application]:
    """The vault as a service of its own, and the front service that forwards to it (holding the vault's keys
    unless ``front_keys`` says otherwise); yields the front."""
    url, keys = broker_namespace(), ServiceKeys.generate()
    vault, front = vault_app(f"sqlite:///{folder / 'vault.db'}"), vault_app(f"sqlite:///{folder / 'front.db'}")
    try:
        await vault.start(modules=["vault"], broker=NatsBroker(url, keys=keys))
        await front.start(modules=["front"], broker=NatsBroker(url, keys=front_keys or keys))
        yield front
    finally:
        await front.stop()
        await vault.stop()
        await drop_namespace(url)


async def test_an_unexpected_error_in_a_remote_service_is_a_500_without_its_text_logged_on_both_sides(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="citadel")
    async with vault_and_front(tmp_path) as front, over_http(front) as client:
        response = await client.post(
            "/vault/open-vault", json={"door": "front"}, headers={"x-correlation-id": "vault-request-1"}
        )

    document = problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert document["detail"]
    answered = [r for r in caplog.records if r.getMessage().startswith("unexpected error answering")]
    forwarded = [r for r in caplog.records if r.getMessage().startswith("vault.OpenVault failed in its service")]
    assert len(answered) == 1
    assert len(forwarded) == 1
    assert "vault-request-1" in answered[0].getMessage()
    assert answered[0].exc_info is not None
    assert SECRET_TEXT in str(answered[0].exc_info[1])  # the full error stays in the service where it happened
    assert "vault-request-1" in forwarded[0].getMessage()
    assert "hunter2" not in forwarded[0].getMessage()


async def test_a_service_holding_other_keys_than_its_peer_gets_401_for_what_it_forwards(tmp_path: Path) -> None:
    async with vault_and_front(tmp_path, ServiceKeys.generate()) as front, over_http(front) as client:
        response = await client.post("/vault/open-vault", json={"door": "front"})

    problem(response, 401, "unauthenticated")
    assert "hunter2" not in response.text
