"""Service keys: their setting and file forms, rotation, and the canonical form the signatures cover."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from citadel.errors import ConfigurationError, UnverifiedMessage
from citadel.messaging import wire
from citadel.messaging.signing import ServiceKeys, canonical

SUBJECT = "shop.rpc.users.GetUser"
BODY = b'{"user_id":"u1"}'


def request_headers() -> dict[str, str]:
    return {wire.TYPE: "users.GetUser", wire.ACTOR: "u1", wire.ROLES: "customer", wire.MESSAGE_ID: "m1"}


def test_the_setting_form_gives_back_the_same_keys_the_first_one_signing() -> None:
    keys = ServiceKeys.generate().rotated()

    again = ServiceKeys.parse(keys.setting())

    assert list(again) == list(keys)
    assert again.current == keys.current
    signed = wire.sign(keys, wire.REQUEST, SUBJECT, BODY, request_headers())
    wire.verify(again, wire.REQUEST, SUBJECT, BODY, signed, max_age=60)


@pytest.mark.parametrize(
    "text",
    ["", "k1", "k1:not base64!", f"k1:{base64.b64encode(b'short').decode()}", f"bad id:{'A' * 44}"],
)
def test_a_malformed_service_key_setting_is_refused_with_its_form(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"service key|service_key"):
        ServiceKeys.parse(text)


def test_rotated_keys_sign_with_a_new_key_and_still_verify_the_previous_one() -> None:
    old = ServiceKeys.generate()

    new = old.rotated()

    assert new.current != old.current
    assert list(new) == [new.current, old.current]
    signed_before = wire.sign(old, wire.REQUEST, SUBJECT, BODY, request_headers())
    wire.verify(new, wire.REQUEST, SUBJECT, BODY, signed_before, max_age=60)


def test_a_second_rotation_drops_the_oldest_key() -> None:
    first = ServiceKeys.generate()
    signed = wire.sign(first, wire.REQUEST, SUBJECT, BODY, request_headers())

    twice = first.rotated().rotated()

    assert first.current not in list(twice)
    with pytest.raises(UnverifiedMessage) as refused:
        wire.verify(twice, wire.REQUEST, SUBJECT, BODY, signed, max_age=60)
    assert refused.value.reason == "unknown-key"


def test_a_key_file_is_written_for_its_owner_only_and_read_back(tmp_path: Path) -> None:
    keys = ServiceKeys.generate().rotated()
    path = tmp_path / "var" / "service-keys.json"

    assert keys.create(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not keys.create(path)  # it exists: nothing is written
    loaded = ServiceKeys.load(path)
    assert (list(loaded), loaded.current) == (list(keys), keys.current)


def test_saving_rotated_keys_replaces_the_file_still_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "service-keys.json"
    keys = ServiceKeys.generate()
    keys.create(path)

    keys.rotated().save(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ServiceKeys.load(path).current != keys.current
    assert keys.current in list(ServiceKeys.load(path))


def test_a_key_file_others_can_read_is_refused_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    path = tmp_path / "service-keys.json"
    ServiceKeys.generate().create(path)
    os.chmod(path, 0o644)

    with pytest.raises(ConfigurationError, match=rf"chmod 600 {path}"):
        ServiceKeys.load(path)


def test_a_malformed_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "service-keys.json"
    path.write_text('{"current": "k1", "keys": {}}')
    os.chmod(path, 0o600)

    with pytest.raises(ConfigurationError, match="cannot read the service key file"):
        ServiceKeys.load(path)


def test_keys_never_show_their_secret_in_their_representation() -> None:
    keys = ServiceKeys.generate()

    assert keys.setting().split(":", 1)[1] not in repr(keys)


def test_the_canonical_form_tells_apart_parts_that_concatenate_alike() -> None:
    assert canonical("ab", "c") != canonical("a", "bc")
    assert canonical("a", "") != canonical("a")


def test_role_order_does_not_change_a_signature_but_a_role_does() -> None:
    keys = ServiceKeys.generate()
    signed = wire.sign(keys, wire.REQUEST, SUBJECT, BODY, {**request_headers(), wire.ROLES: "admin,customer"})

    wire.verify(keys, wire.REQUEST, SUBJECT, BODY, {**signed, wire.ROLES: "customer,admin"}, max_age=60)
    with pytest.raises(UnverifiedMessage):
        wire.verify(keys, wire.REQUEST, SUBJECT, BODY, {**signed, wire.ROLES: "customer"}, max_age=60)


def test_a_signature_for_one_kind_of_message_does_not_verify_as_another() -> None:
    keys = ServiceKeys.generate()
    signed = wire.sign(keys, wire.REPLY, SUBJECT, BODY, request_headers())

    with pytest.raises(UnverifiedMessage) as refused:
        wire.verify(keys, wire.REQUEST, SUBJECT, BODY, signed, max_age=60)
    assert refused.value.reason == "bad-signature"
