"""The HTTP server's limits as settings: every one reaches the server from ``citadel.toml``, a ``CITADEL_*`` variable
or an option of ``citadel serve``, and a value no server could keep is refused with one line naming the fix."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from citadel.config import Settings, load_settings
from citadel.errors import ConfigurationError
from citadel.http.server import Limits
from citadel.server import server_limits

from .conftest import Citadel
from .test_cli import SHOP, assert_fails_with

LIMITS = Limits.__struct_fields__
CHANGED = {
    "max_request_line": 4096,
    "max_header_bytes": 8192,
    "max_headers": 50,
    "header_timeout": 5.0,
    "min_body_rate": 512,
    "max_body": 65536,
    "keep_alive_timeout": 12.5,
    "send_timeout": 7.0,
    "max_connections": 1000,
    "max_connections_per_client": 16,
    "max_connection_memory": 1 << 20,
}


def test_the_settings_defaults_are_the_servers_defaults() -> None:
    assert server_limits(Settings()) == Limits()
    assert set(CHANGED) == set(LIMITS)


def test_every_limit_is_read_from_citadel_toml(tmp_path: Path) -> None:
    file = tmp_path / "citadel.toml"
    file.write_text("".join(f"{name} = {value!r}\n" for name, value in CHANGED.items()))
    assert msgspec.structs.asdict(server_limits(load_settings(file, environ={}))) == CHANGED


def test_every_limit_is_read_from_its_variable_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "citadel.toml"
    file.write_text("max_headers = 60\n")
    environ = {f"CITADEL_{name.upper()}": str(value) for name, value in CHANGED.items()}
    assert msgspec.structs.asdict(server_limits(load_settings(file, environ=environ))) == CHANGED


def test_trusted_proxies_are_a_list_in_citadel_toml_and_comma_separated_elsewhere(tmp_path: Path) -> None:
    file = tmp_path / "citadel.toml"
    file.write_text('trusted_proxies = ["10.0.0.0/8", "::1"]\n')
    assert load_settings(file, environ={}).trusted_proxies == ["10.0.0.0/8", "::1"]
    environ = {"CITADEL_TRUSTED_PROXIES": " 10.0.0.1 , 192.0.2.0/24 ,"}
    assert load_settings(file, environ=environ).trusted_proxies == ["10.0.0.1", "192.0.2.0/24"]
    assert load_settings(file, environ={}, trusted_proxies="127.0.0.1").trusted_proxies == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_headers", 0),
        ("max_request_line", -1),
        ("max_body", 0),
        ("header_timeout", 0.0),
        ("keep_alive_timeout", float("inf")),
        ("send_timeout", float("nan")),
        ("min_body_rate", -5),
        ("max_connections_per_client", -1),
    ],
)
def test_a_limit_no_server_could_keep_is_refused_naming_it(name: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=name):
        server_limits(Settings(**{name: value}))  # type: ignore[arg-type]


def test_a_connection_memory_smaller_than_one_request_says_how_large_it_must_be() -> None:
    with pytest.raises(ConfigurationError, match=r"raise it to at least 10510336"):
        server_limits(Settings(max_body=10 << 20))


def test_every_limit_has_an_option_of_citadel_serve(citadel: Citadel) -> None:
    help_text = " ".join(citadel("serve", "--help").stdout.split())
    for name in [*LIMITS, "max_wait", "trusted_proxies"]:
        assert f"--{name.replace('_', '-')}" in help_text, name


def test_an_option_of_citadel_serve_that_breaks_a_limit_is_refused_before_serving(citadel: Citadel) -> None:
    assert_fails_with(citadel("serve", SHOP, "--max-headers", "0"), "max_headers is 0; give a whole number >= 1")
    assert_fails_with(citadel("serve", SHOP, "--header-timeout", "-1"), "header_timeout is -1.0")


def test_a_limit_variable_that_is_not_a_number_is_refused_naming_it(citadel: Citadel) -> None:
    assert_fails_with(citadel("serve", SHOP, CITADEL_MAX_BODY="1MB"), "$.max_body")


def test_a_trusted_proxy_that_is_not_an_address_is_refused_naming_it(citadel: Citadel) -> None:
    assert_fails_with(citadel("serve", SHOP, "--trusted-proxies", "10.0.0.0/8,proxy.local"), "proxy.local")
