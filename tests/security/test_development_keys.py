"""Secrets and keys at start: created only in development mode (and then shared by every node started from the
same directory), an error naming the setting and the command otherwise."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from citadel.config import Settings
from citadel.errors import ConfigurationError
from citadel.messaging.signing import ServiceKeys
from citadel.security.encryption import MasterKeys
from citadel.server import is_loopback
from citadel.setup import master_keys, prepare, service_keys, token_secret

BROKER = "nats://127.0.0.1:4222"
SECRET = "s" * 40


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory nodes start from (the settings' files are relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_development_mode_creates_the_secret_and_keys_in_a_var_only_its_owner_can_open(here: Path) -> None:
    warnings = prepare(Settings(dev=True, broker=BROKER))

    assert mode(here / "var") == 0o700
    for name in ("citadel-dev-secret", "citadel-master-keys.json", "citadel-service-keys.json"):
        assert mode(here / "var" / name) == 0o600
    assert [w.split(" in ")[0] for w in warnings] == [
        "development mode: created a token secret",
        "development mode: created a master key",
        "development mode: created a service key",
    ]


def test_nodes_started_in_development_mode_from_one_directory_share_the_secret_and_keys(here: Path) -> None:
    first = Settings(dev=True, broker=BROKER, modules="users")
    second = Settings(dev=True, broker=BROKER, modules="orders")
    prepare(first)

    assert prepare(second) == []
    assert token_secret(first) == token_secret(second)
    one, other = master_keys(first), master_keys(second)
    assert one is not None
    assert other is not None
    assert one.keys == other.keys
    signing, verifying = service_keys(first), service_keys(second)
    assert signing is not None
    assert verifying is not None
    assert signing.setting() == verifying.setting()


def test_development_mode_without_a_broker_creates_no_service_key(here: Path) -> None:
    prepare(Settings(dev=True))

    assert not (here / "var" / "citadel-service-keys.json").exists()


def test_development_mode_keeps_existing_keys(here: Path) -> None:
    keys = MasterKeys.generate()
    keys.create(here / "var" / "citadel-master-keys.json")

    prepare(Settings(dev=True))

    assert MasterKeys.load(here / "var" / "citadel-master-keys.json").keys == keys.keys


@pytest.mark.parametrize(
    ("settings", "fragments"),
    [
        (
            Settings(),
            [
                "no token secret: var/citadel-dev-secret does not exist.",
                "Set auth_secret_file (CITADEL_AUTH_SECRET_FILE) to the file that holds it or CITADEL_AUTH_SECRET",
                "make one with `citadel keys generate --kind secret var/citadel-dev-secret`",
                "or run in development mode (--dev, CITADEL_DEV=1)",
            ],
        ),
        (
            Settings(auth_secret=SECRET),
            [
                "no master key: var/citadel-master-keys.json does not exist.",
                "Set master_key_file (CITADEL_MASTER_KEY_FILE) to the key file or CITADEL_MASTER_KEY to the key",
                "make one with `citadel keys generate var/citadel-master-keys.json`",
                "or run in development mode (--dev, CITADEL_DEV=1)",
            ],
        ),
        (
            Settings(auth_secret=SECRET, encrypt=False, broker=BROKER),
            [
                "no service key: var/citadel-service-keys.json does not exist.",
                "Set service_key_file (CITADEL_SERVICE_KEY_FILE) to the key file or CITADEL_SERVICE_KEY to the keys",
                "make one with `citadel keys generate --kind service var/citadel-service-keys.json`",
                "or run in development mode (--dev, CITADEL_DEV=1)",
            ],
        ),
    ],
    ids=["token secret", "master key", "service key"],
)
def test_outside_development_mode_a_missing_secret_is_refused_naming_its_setting_and_command(
    here: Path, settings: Settings, fragments: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        prepare(settings)

    for fragment in fragments:
        assert fragment in str(refused.value)
    assert not (here / "var").exists()


def test_outside_development_mode_secrets_given_as_values_need_no_file(here: Path) -> None:
    settings = Settings(
        auth_secret=SECRET,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        broker=BROKER,
        service_key=ServiceKeys.generate().setting(),
    )

    assert prepare(settings) == []
    assert not (here / "var").exists()


def test_development_mode_refuses_a_key_file_others_can_read_instead_of_replacing_it(here: Path) -> None:
    path = here / "var" / "citadel-master-keys.json"
    MasterKeys.generate().create(path)
    path.chmod(0o644)

    with pytest.raises(ConfigurationError, match=r"run `chmod 600 var/citadel-master-keys.json`"):
        prepare(Settings(dev=True))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.10", False),
        ("example.com", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
