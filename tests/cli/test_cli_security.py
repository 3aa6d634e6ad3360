"""The command line's security tools, run as the installed script: ``citadel token`` (development bearer tokens)
and ``citadel keys generate`` / ``citadel keys rotate`` (master keys of encryption at rest)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import jwt
import pytest

from citadel.context import Actor
from citadel.errors import ConfigurationError
from citadel.security import TokenVerifier
from citadel.security.encryption import Keyring, MasterKeys
from citadel.store.base import RecordedEvent
from examples.shop import build_app
from examples.shop.content.contract import PublishContent
from examples.shop.users.contract import RegisterUser

from .conftest import Citadel

SHOP = "examples.shop:app"


def assert_one_line_error(result: CompletedProcess[str], *fragments: str) -> None:
    """Assert the command failed with status 2 and one line of error naming every fragment, no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# -- citadel token -----------------------------------------------------------------------------------------------


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The working directory of ``citadel token``."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def token(citadel: Citadel, work: Path, *options: str, dev: bool = True) -> CompletedProcess[str]:
    """``citadel token`` with its secret in ``work``'s parent, in development mode (which creates it) or not."""
    secret = str(work.parent / "secret")
    return citadel("token", SHOP, *options, *(["--dev"] if dev else []), cwd=work, CITADEL_AUTH_SECRET_FILE=secret)


def verified(work: Path, result: CompletedProcess[str]) -> Actor:
    """The actor of the one token ``result`` printed, verified with the secret file."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return TokenVerifier(secret=(work.parent / "secret").read_text().strip()).verify(lines[0])


def test_token_prints_one_jwt_that_verifies_to_its_subject_and_role(citadel: Citadel, work: Path) -> None:
    result = token(citadel, work, "--subject", "ada", "--role", "customer", "--ttl", "30m")

    assert verified(work, result) == Actor("ada", frozenset({"customer"}))


def test_token_with_a_ttl_of_30m_expires_30_minutes_from_now(citadel: Citadel, work: Path) -> None:
    result = token(citadel, work, "--subject", "ada", "--role", "customer", "--ttl", "30m")

    secret = (work.parent / "secret").read_text().strip()
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"], audience="citadel", issuer="citadel")
    assert abs(claims["exp"] - time.time() - 30 * 60) < 60


def test_token_creates_its_secret_file_readable_by_its_owner_only(citadel: Citadel, work: Path) -> None:
    result = token(citadel, work, "--subject", "ada", "--ttl", "30m")

    assert result.returncode == 0, result.stderr
    assert mode(work.parent / "secret") == 0o600
    assert len((work.parent / "secret").read_text().strip()) >= 32


def test_token_outside_development_mode_without_a_secret_exits_2_naming_the_settings_and_the_command(
    citadel: Citadel, work: Path
) -> None:
    result = token(citadel, work, "--subject", "ada", dev=False)

    assert_one_line_error(
        result,
        f"no token secret: {work.parent / 'secret'} does not exist",
        "auth_secret_file (CITADEL_AUTH_SECRET_FILE)",
        "CITADEL_AUTH_SECRET",
        f"`citadel keys generate --kind secret {work.parent / 'secret'}`",
        "(--dev, CITADEL_DEV=1)",
    )
    assert not (work.parent / "secret").exists()


def test_token_with_citadel_dev_set_creates_its_secret_like_dev(citadel: Citadel, work: Path) -> None:
    secret = str(work.parent / "secret")

    result = citadel("token", SHOP, "--subject", "ada", cwd=work, CITADEL_AUTH_SECRET_FILE=secret, CITADEL_DEV="1")

    assert verified(work, result) == Actor("ada")


def test_token_signs_with_a_secret_made_by_keys_generate_outside_development_mode(citadel: Citadel, work: Path) -> None:
    made = citadel("keys", "generate", "--kind", "secret", str(work.parent / "secret"))

    result = token(citadel, work, "--subject", "ada", dev=False)

    assert made.returncode == 0, made.stderr
    assert verified(work, result) == Actor("ada")


def test_token_refuses_a_secret_file_others_can_read_naming_chmod(citadel: Citadel, work: Path) -> None:
    secret = work.parent / "secret"
    secret.write_text("s" * 48 + "\n")
    secret.chmod(0o640)

    result = token(citadel, work, "--subject", "ada", dev=False)

    assert_one_line_error(result, f"`chmod 600 {secret}`", "mode 640")


@pytest.mark.parametrize("subject", ["system", "anonymous"])
def test_token_for_a_reserved_subject_exits_2_and_creates_no_secret(citadel: Citadel, work: Path, subject: str) -> None:
    result = token(citadel, work, "--subject", subject)

    assert_one_line_error(result, f"the subject {subject!r} is reserved", "choose another --subject")
    assert not (work.parent / "secret").exists()


def test_a_second_token_is_signed_with_the_secret_the_first_created(citadel: Citadel, work: Path) -> None:
    token(citadel, work, "--subject", "ada")
    secret = (work.parent / "secret").read_text()

    second = token(citadel, work, "--subject", "grace")

    assert (work.parent / "secret").read_text() == secret
    assert verified(work, second) == Actor("grace")


def test_token_with_a_repeated_role_carries_every_role(citadel: Citadel, work: Path) -> None:
    result = token(citadel, work, "--subject", "ada", "--role", "customer", "--role", "admin", "--role", "auditor")

    assert verified(work, result).roles == {"customer", "admin", "auditor"}


def test_token_without_a_subject_exits_2_asking_for_one(citadel: Citadel, work: Path) -> None:
    assert_one_line_error(token(citadel, work, "--role", "customer"), "--subject")


@pytest.mark.parametrize("ttl", ["soon", "30x", "", "1h30m", "m"])
def test_token_with_a_ttl_that_is_not_a_duration_exits_2_showing_the_form(
    citadel: Citadel, work: Path, ttl: str
) -> None:
    assert_one_line_error(token(citadel, work, "--subject", "ada", "--ttl", ttl), "--ttl", "30m")


@pytest.mark.parametrize("ttl", ["nan", "inf"])
def test_token_with_a_ttl_that_is_not_finite_exits_2_without_a_traceback(
    citadel: Citadel, work: Path, ttl: str
) -> None:
    assert_one_line_error(token(citadel, work, "--subject", "ada", "--ttl", ttl), "--ttl")


@pytest.mark.parametrize("ttl", ["-5m", "0"])
def test_token_with_a_ttl_that_is_not_positive_exits_2(citadel: Citadel, work: Path, ttl: str) -> None:
    assert_one_line_error(token(citadel, work, "--subject", "ada", "--ttl", ttl), "--ttl")


# -- citadel keys generate ---------------------------------------------------------------------------------------


def test_keys_generate_writes_a_file_master_keys_load_reads(citadel: Citadel, tmp_path: Path) -> None:
    result = citadel("keys", "generate", str(tmp_path / "keys.json"))

    assert result.returncode == 0, result.stderr
    keys = MasterKeys.load(tmp_path / "keys.json")
    assert list(keys.keys) == [keys.current]
    assert len(keys.keys[keys.current]) == 32


def test_keys_generate_writes_a_file_readable_by_its_owner_only(citadel: Citadel, tmp_path: Path) -> None:
    citadel("keys", "generate", str(tmp_path / "keys.json"))

    assert mode(tmp_path / "keys.json") == 0o600


def test_keys_generate_on_an_existing_file_exits_2_and_leaves_it_unchanged(citadel: Citadel, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    citadel("keys", "generate", str(path))
    before = path.read_bytes()

    result = citadel("keys", "generate", str(path))

    assert_one_line_error(result, str(path), "citadel keys rotate")
    assert path.read_bytes() == before


def test_keys_generate_without_a_path_writes_the_settings_file_in_a_new_var_of_mode_0700(
    citadel: Citadel, work: Path
) -> None:
    result = citadel("keys", "generate", cwd=work)

    assert result.returncode == 0, result.stderr
    assert mode(work / "var") == 0o700
    assert mode(work / "var" / "citadel-master-keys.json") == 0o600
    keys = MasterKeys.load(work / "var" / "citadel-master-keys.json")
    assert list(keys.keys) == [keys.current]


def test_keys_generate_kind_secret_writes_a_token_secret_readable_by_its_owner_only(
    citadel: Citadel, tmp_path: Path
) -> None:
    result = citadel("keys", "generate", "--kind", "secret", str(tmp_path / "secret"))

    assert result.returncode == 0, result.stderr
    assert mode(tmp_path / "secret") == 0o600
    TokenVerifier(secret=(tmp_path / "secret").read_text().strip())  # long enough for HS256


def test_keys_generate_kind_service_writes_service_keys_readable_by_its_owner_only(
    citadel: Citadel, tmp_path: Path
) -> None:
    from citadel.messaging.signing import ServiceKeys

    result = citadel("keys", "generate", "--kind", "service", str(tmp_path / "service.json"))

    assert result.returncode == 0, result.stderr
    assert mode(tmp_path / "service.json") == 0o600
    assert len(list(ServiceKeys.load(tmp_path / "service.json"))) == 1


def test_keys_generate_of_an_unknown_kind_exits_2_listing_the_kinds(citadel: Citadel, tmp_path: Path) -> None:
    result = citadel("keys", "generate", "--kind", "password", str(tmp_path / "x"))

    assert_one_line_error(result, "--kind 'password' is not one of master, secret, service")
    assert not (tmp_path / "x").exists()


def test_a_master_key_file_others_can_read_is_refused_naming_chmod(citadel: Citadel, tmp_path: Path) -> None:
    citadel("keys", "generate", str(tmp_path / "keys.json"))
    (tmp_path / "keys.json").chmod(0o644)

    with pytest.raises(ConfigurationError, match=r"open to other users \(mode 644\): run `chmod 600 .*keys.json`"):
        MasterKeys.load(tmp_path / "keys.json")


# -- citadel keys rotate -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    """A shop whose payloads are encrypted with the master keys in ``keys``."""

    store: str
    database: Path
    keys: Path
    email: str
    name: str
    first_key: str


async def seed(store: str, keys: Path, email: str, name: str) -> None:
    app = build_app(store=store, secure=False, keyring=Keyring(MasterKeys.load(keys)))
    await app.start(consumers=False)
    try:
        await app.dispatch(RegisterUser(email=email, name=name))
        await app.dispatch(PublishContent(title="Notes", body="...", price=500))
    finally:
        await app.stop()


async def read_log(store: str, keys: MasterKeys) -> list[RecordedEvent]:
    app = build_app(store=store, secure=False, keyring=Keyring(keys))
    await app.start(consumers=False)
    try:
        return list(await app.store.read_all(1, 10_000))
    finally:
        await app.stop()


@pytest.fixture
def sealed(tmp_path: Path) -> Sealed:
    database, keys, tag = tmp_path / "shop.db", tmp_path / "keys.json", uuid.uuid4().hex[:12]
    master = MasterKeys.generate()
    master.create(keys)
    shop = Sealed(f"sqlite:///{database}", database, keys, f"grace.{tag}@example.com", f"Grace {tag}", master.current)
    asyncio.run(seed(shop.store, keys, shop.email, shop.name))
    return shop


def rotate(citadel: Citadel, shop: Sealed, store: str | None = None) -> CompletedProcess[str]:
    return citadel("keys", "rotate", SHOP, "--store", store or shop.store, CITADEL_MASTER_KEY_FILE=str(shop.keys))


def only_current(path: Path) -> MasterKeys:
    """The current key of a key file, without any other."""
    keys = MasterKeys.load(path)
    return MasterKeys({keys.current: keys.keys[keys.current]}, keys.current)


def test_keys_rotate_adds_a_new_current_key_and_keeps_the_old_one(citadel: Citadel, sealed: Sealed) -> None:
    result = rotate(citadel, sealed)

    assert result.returncode == 0, result.stderr
    keys = MasterKeys.load(sealed.keys)
    assert keys.current != sealed.first_key
    assert set(keys.keys) == {sealed.first_key, keys.current}
    assert keys.current in result.stdout


def test_keys_rotate_keeps_the_key_file_readable_by_its_owner_only(citadel: Citadel, sealed: Sealed) -> None:
    rotate(citadel, sealed)

    assert mode(sealed.keys) == 0o600


def test_after_keys_rotate_the_new_key_alone_opens_every_event(citadel: Citadel, sealed: Sealed) -> None:
    assert rotate(citadel, sealed).returncode == 0

    log = asyncio.run(read_log(sealed.store, only_current(sealed.keys)))

    assert [r.type for r in log] == ["users.UserRegistered", "content.ContentPublished"]
    registered = log[0].event
    assert (registered.email, registered.name) == (sealed.email, sealed.name)  # type: ignore[attr-defined]
    assert log[1].event.title == "Notes"  # type: ignore[attr-defined]


def test_after_keys_rotate_no_framework_table_holds_the_email_or_name_in_plaintext(
    citadel: Citadel, sealed: Sealed
) -> None:
    assert rotate(citadel, sealed).returncode == 0

    with contextlib.closing(sqlite3.connect(sealed.database)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        framework = [table for table in tables if table.startswith("citadel_")]
        dump = "\n".join(repr(row) for table in framework for row in db.execute(f"SELECT * FROM {table}"))
    assert "citadel_events" in framework
    assert sealed.email not in dump
    assert sealed.name not in dump


def test_keys_rotate_twice_leaves_three_keys_and_the_newest_alone_opens_every_event(
    citadel: Citadel, sealed: Sealed
) -> None:
    assert rotate(citadel, sealed).returncode == 0
    second = rotate(citadel, sealed)

    assert second.returncode == 0, second.stderr
    assert len(MasterKeys.load(sealed.keys).keys) == 3
    log = asyncio.run(read_log(sealed.store, only_current(sealed.keys)))
    assert [type(r.event).__name__ for r in log] == ["UserRegistered", "ContentPublished"]


def test_keys_rotate_with_a_store_that_does_not_exist_exits_2_and_creates_nothing(
    citadel: Citadel, sealed: Sealed, tmp_path: Path
) -> None:
    key_file = sealed.keys.read_bytes()
    before = sorted(p.name for p in tmp_path.iterdir())

    result = rotate(citadel, sealed, store=f"sqlite:///{tmp_path / 'missing.db'}")

    assert_one_line_error(result, str(tmp_path / "missing.db"))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert sealed.keys.read_bytes() == key_file
    assert json.loads(key_file)["current"] == sealed.first_key
