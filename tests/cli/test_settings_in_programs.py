"""What a Python program gets from the settings the command line uses (``citadel.configure``), and what a store
opened without keys refuses: a store holding sealed payloads, on each backend, at start or when it reads them.

``tests/e2e/test_cli_on_served_store.py`` runs such a program on a store written by ``citadel serve``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

import citadel
from citadel import ConfigurationError, EventStore, RecordedEvent, configure, load_settings, open_store
from citadel.security.encryption import Keyring, MasterKeys
from examples.shop import build_app
from examples.shop.users.contract import GetUser, RegisterUser
from examples.shop.users.domain import UserRegistered
from tests.backends import BACKENDS, clean_store_url

ADMIN = citadel.DispatchContext(actor=citadel.Actor("script-admin", frozenset({"admin"})))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory (``var/`` is relative to it), with no ``CITADEL_*`` variable set."""
    for name in [name for name in os.environ if name.startswith("CITADEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def sealed_user(store: str, keys: MasterKeys) -> str:
    """Register a user in a shop sealed with ``keys``; return their id."""
    app = build_app(store=store, secure=False, keyring=Keyring(keys))
    async with app:
        registered = await app.dispatch(RegisterUser(email=f"ada.{uuid.uuid4().hex[:8]}@example.com", name="Ada"))
    return str(registered.user_id)


async def read_some(store: EventStore) -> list[RecordedEvent]:
    """The first events of the log, once there are some (PostgreSQL shows a commit once older transactions of the
    whole server, other tests' too, have ended)."""
    for _ in range(200):
        if records := await store.read_all(1, 100):
            return records
        await asyncio.sleep(0.05)
    raise AssertionError("no event became readable within 10 s")


async def test_configure_without_settings_loads_them_as_the_command_line_does(workdir: Path) -> None:
    keys = MasterKeys.generate()
    keys.save(workdir / "keys.json")
    (workdir / "citadel.toml").write_text(f'store = "sqlite:///{workdir}/shop.db"\nlease_ttl = 7.5\n')
    user_id = await sealed_user(f"sqlite:///{workdir}/shop.db", keys)
    app = build_app(secure=False)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITADEL_MASTER_KEY_FILE", "keys.json")
        configure(app)

    assert app.store_spec == f"sqlite:///{workdir}/shop.db"
    assert app.lease_ttl == 7.5
    async with app:
        assert (await app.query(GetUser(user_id=user_id), ADMIN)).name == "Ada"


async def test_configure_in_development_mode_creates_the_missing_master_key_file(workdir: Path) -> None:
    app = build_app(secure=False)

    configure(app, load_settings(dev=True, store=f"sqlite:///{workdir}/var/shop.db"))

    assert (workdir / "var" / "citadel-master-keys.json").stat().st_mode & 0o777 == 0o600
    async with app:
        await app.dispatch(RegisterUser(email="grace@example.com", name="Grace"))
    again = build_app(secure=False)
    configure(again, load_settings(store=f"sqlite:///{workdir}/var/shop.db"))  # outside development mode: reads it
    async with again:
        assert len(await again.store.read_all(1, 10)) == 1


def test_configure_outside_development_mode_without_the_key_file_names_the_setting(workdir: Path) -> None:
    with pytest.raises(ConfigurationError) as refused:
        configure(build_app(), load_settings())

    assert str(refused.value).startswith("no master key: var/citadel-master-keys.json does not exist.")
    assert "master_key_file (CITADEL_MASTER_KEY_FILE)" in str(refused.value)
    assert not (workdir / "var").exists()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_application_without_keys_refuses_at_start_a_store_holding_sealed_payloads(
    backend: str, tmp_path: Path
) -> None:
    url = await clean_store_url(backend, tmp_path)
    await sealed_user(url, MasterKeys.generate())
    plain = build_app(store=url, secure=False)

    with pytest.raises(ConfigurationError) as refused:
        await plain.start(consumers=False)

    assert str(refused.value).startswith("the payloads in this store are encrypted, but no master key was given")
    assert "master_key_file (CITADEL_MASTER_KEY_FILE) or CITADEL_MASTER_KEY" in str(refused.value)
    assert "Application(keyring=...)" in str(refused.value)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_store_opened_without_keys_refuses_sealed_payloads_written_after_it_opened(
    backend: str, tmp_path: Path
) -> None:
    url = await clean_store_url(backend, tmp_path)
    plain = open_store(url, build_app().registry)
    await plain.open()
    try:
        await sealed_user(url, MasterKeys.generate())

        with pytest.raises(ConfigurationError, match=r"^the payloads in this store are encrypted"):
            await read_some(plain)
    finally:
        await plain.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_application_without_keys_opens_a_store_of_plain_payloads(backend: str, tmp_path: Path) -> None:
    url = await clean_store_url(backend, tmp_path)
    app = build_app(store=url, secure=False)
    async with app:
        await app.dispatch(RegisterUser(email="ada@example.com", name="Ada"))

    again = build_app(store=url, secure=False)
    async with again:
        (record,) = await read_some(again.store)
    event = record.event
    assert isinstance(event, UserRegistered)
    assert event.email == "ada@example.com"


def test_the_package_exports_configure_its_settings_and_the_errors_of_waiting() -> None:
    from citadel import errors, setup

    exported = {"configure", "load_settings", "Settings", "NotCaughtUp", "PositionNotWritten"}
    assert exported <= set(citadel.__all__)
    assert citadel.configure is setup.configure
    assert (citadel.NotCaughtUp, citadel.PositionNotWritten) == (errors.NotCaughtUp, errors.PositionNotWritten)
