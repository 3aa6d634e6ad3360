"""What ``citadel serve`` and ``citadel consume`` check before they start: the secrets and keys exist (created
only in development mode, which serves on loopback only), and the store's data keys need no master key the
process lacks. Each refusal is one line naming the fix, and nothing is created."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from citadel.security.encryption import Keyring, MasterKeys
from examples.shop import build_app
from examples.shop.users.contract import RegisterUser

from .conftest import Citadel
from .test_cli import assert_fails_with

SHOP = "examples.shop:app"
SECRET = "s" * 40


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The directory the commands start from (``var/`` is relative to it)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


async def sealed_shop(store: str, keys: MasterKeys) -> None:
    """A shop whose data keys are wrapped by ``keys``."""
    app = build_app(store=store, secure=False, keyring=Keyring(keys))
    await app.start(consumers=False)
    try:
        await app.dispatch(RegisterUser(email=f"ada.{uuid.uuid4().hex[:8]}@example.com", name="Ada"))
    finally:
        await app.stop()


@pytest.mark.parametrize(
    ("options", "variables"),
    [(["--dev", "--host", "0.0.0.0"], {}), (["--host", "192.0.2.10"], {"CITADEL_DEV": "1"})],
    ids=["--dev", "CITADEL_DEV"],
)
def test_serve_in_development_mode_on_a_public_address_exits_2_naming_the_fix(
    citadel: Citadel, work: Path, options: list[str], variables: dict[str, str]
) -> None:
    result = citadel("serve", SHOP, *options, cwd=work, **variables)

    assert_fails_with(
        result,
        "development mode serves on loopback only (127.0.0.1, ::1, localhost), not on",
        "serve on --host 127.0.0.1, or leave development mode (drop --dev, CITADEL_DEV and dev in citadel.toml)",
    )
    assert list(work.iterdir()) == []


def test_serve_outside_development_mode_without_a_token_secret_exits_2_naming_the_setting_and_command(
    citadel: Citadel, work: Path
) -> None:
    result = citadel("serve", SHOP, cwd=work)

    assert_fails_with(
        result,
        "no token secret: var/citadel-dev-secret does not exist",
        "auth_secret_file (CITADEL_AUTH_SECRET_FILE)",
        "`citadel keys generate --kind secret var/citadel-dev-secret`",
        "(--dev, CITADEL_DEV=1)",
    )
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("command", ["serve", "consume"])
def test_outside_development_mode_without_a_master_key_exits_2_naming_the_setting_and_command(
    citadel: Citadel, work: Path, command: str
) -> None:
    result = citadel(command, SHOP, cwd=work, CITADEL_AUTH_SECRET=SECRET)

    assert_fails_with(
        result,
        "no master key: var/citadel-master-keys.json does not exist",
        "master_key_file (CITADEL_MASTER_KEY_FILE)",
        "CITADEL_MASTER_KEY",
        "`citadel keys generate var/citadel-master-keys.json`",
    )
    assert list(work.iterdir()) == []


def test_consume_on_a_broker_without_a_service_key_exits_2_naming_the_setting_and_command(
    citadel: Citadel, work: Path
) -> None:
    result = citadel(
        "consume", SHOP, "--broker", "nats://127.0.0.1:4222", cwd=work, CITADEL_AUTH_SECRET=SECRET, CITADEL_ENCRYPT="0"
    )

    assert_fails_with(
        result,
        "no service key: var/citadel-service-keys.json does not exist",
        "service_key_file (CITADEL_SERVICE_KEY_FILE)",
        "CITADEL_SERVICE_KEY",
        "`citadel keys generate --kind service var/citadel-service-keys.json`",
    )


@pytest.mark.parametrize("command", ["serve", "consume"])
def test_a_store_whose_data_needs_a_master_key_not_given_is_refused_naming_the_key_id(
    citadel: Citadel, work: Path, command: str
) -> None:
    lost = MasterKeys.generate()
    store = f"sqlite:///{work / 'shop.db'}"
    asyncio.run(sealed_shop(store, lost))
    other = work / "other-keys.json"
    assert citadel("keys", "generate", str(other)).returncode == 0

    result = citadel(command, SHOP, "--store", store, CITADEL_AUTH_SECRET=SECRET, CITADEL_MASTER_KEY_FILE=str(other))

    assert_fails_with(
        result,
        f"the stored data keys need master key {lost.current!r}, which this process does not hold",
        "give the key file that holds it (master_key_file, CITADEL_MASTER_KEY_FILE)",
        "CITADEL_MASTER_KEY",
    )


def test_development_mode_never_replaces_a_lost_master_key_silently(citadel: Citadel, work: Path) -> None:
    lost = MasterKeys.generate()
    store = f"sqlite:///{work / 'shop.db'}"
    asyncio.run(sealed_shop(store, lost))

    result = citadel("serve", SHOP, "--dev", "--store", store, cwd=work)

    assert result.returncode == 2, result.stderr
    *warnings, error = result.stderr.splitlines()
    assert error.startswith(f"error: the stored data keys need master key {lost.current!r}")
    assert any("development mode: created a master key in var/citadel-master-keys.json" in w for w in warnings)
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_token_secret_file_others_can_read_naming_chmod(citadel: Citadel, work: Path) -> None:
    (work / "var").mkdir(mode=0o700)
    (work / "var" / "citadel-dev-secret").write_text(SECRET + "\n")
    (work / "var" / "citadel-dev-secret").chmod(0o644)

    result = citadel("serve", SHOP, "--dev", cwd=work)

    assert_fails_with(result, "the token secret file var/citadel-dev-secret is open to other users (mode 644)")
    assert "run `chmod 600 var/citadel-dev-secret`" in result.stderr


@pytest.mark.parametrize("command", [["events", "tail"], ["projections", "status"], ["dead-letters", "list"]])
def test_a_tool_with_encryption_off_on_a_sealed_store_exits_2_naming_the_settings(
    citadel: Citadel, work: Path, command: list[str]
) -> None:
    store = f"sqlite:///{work / 'shop.db'}"
    asyncio.run(sealed_shop(store, MasterKeys.generate()))

    result = citadel(*command, SHOP, "--store", store, CITADEL_ENCRYPT="false")

    assert_fails_with(
        result,
        "the payloads in this store are encrypted, but no master key was given",
        "master_key_file (CITADEL_MASTER_KEY_FILE) or CITADEL_MASTER_KEY, with encrypt on (CITADEL_ENCRYPT)",
    )
    assert "malformed" not in result.stderr
