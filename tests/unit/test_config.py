"""Settings from citadel.toml, CITADEL_* variables and options; topologies as settings describe them."""

from __future__ import annotations

from pathlib import Path

import pytest

from citadel.config import load_settings
from citadel.errors import ConfigurationError, InvalidMessage
from citadel.messaging.nats import NatsBroker
from citadel.placement import Placement, parse_position
from examples.shop import build_app


def test_a_topology_written_in_citadel_toml_is_read_with_a_list_or_a_string_of_modules(tmp_path: Path) -> None:
    file = tmp_path / "citadel.toml"
    file.write_text('app = "examples.shop:app"\nmodules = ["users", "orders"]\nbroker = "nats://127.0.0.1:4222/shop"\n')
    settings = load_settings(file, environ={})
    assert (settings.modules, settings.broker) == ("users,orders", "nats://127.0.0.1:4222/shop")

    file.write_text('modules = "billing"\n')
    assert load_settings(file, environ={}).modules == "billing"


def test_variables_override_the_file_and_options_override_both(tmp_path: Path) -> None:
    file = tmp_path / "citadel.toml"
    file.write_text('modules = "billing"\nport = 8001\n')
    environ = {"CITADEL_MODULES": "analytics", "CITADEL_PORT": "8002"}
    assert load_settings(file, environ=environ).modules == "analytics"
    assert load_settings(file, environ=environ, modules="users", port=None).modules == "users"
    assert load_settings(file, environ=environ).port == 8002


def test_a_wrong_setting_names_itself(tmp_path: Path) -> None:
    file = tmp_path / "citadel.toml"
    file.write_text('port = "eighty"\n')
    with pytest.raises(ConfigurationError, match="port"):
        load_settings(file, environ={})


def test_a_placement_refuses_unknown_modules_and_some_modules_without_a_broker() -> None:
    app = build_app(store="sqlite:///:memory:")
    with pytest.raises(ConfigurationError, match="unknown module"):
        Placement(app.modules, ["billing", "shipping"], broker=True)
    with pytest.raises(ConfigurationError, match="needs a broker"):
        Placement(app.modules, ["billing"], broker=False)
    assert not Placement(app.modules, None, broker=False).partial
    assert Placement(app.modules, list(app.modules), broker=False).runs("billing")


def test_positions_are_numbers_in_one_process_and_module_numbers_across_services() -> None:
    app = build_app(store="sqlite:///:memory:")
    assert Placement(app.modules, None, broker=False).position_token("orders", 57) == "57"
    assert Placement(app.modules, ["billing"], broker=True).position_token("billing", 57) == "billing:57"
    modules = list(app.modules)
    assert parse_position("57", modules) == ("", 57)
    assert parse_position("orders:57", modules) == ("orders", 57)
    for bad in ("", "-1", "²", "orders:", "shipping:5", "orders:5:5", "five"):
        with pytest.raises(InvalidMessage):
            parse_position(bad, modules)


def test_a_broker_url_path_names_the_application_on_a_shared_server() -> None:
    shop = NatsBroker("nats://127.0.0.1:4222/my-shop")
    assert (shop.url, shop.prefix, shop.stream) == ("nats://127.0.0.1:4222", "my-shop", "MY_SHOP_EVENTS")
    assert shop.event_subject("orders.OrderCreated") == "my-shop.events.orders.OrderCreated"
    default = NatsBroker("nats://127.0.0.1:4222")
    assert (default.prefix, default.stream) == ("citadel", "CITADEL_EVENTS")
    with pytest.raises(ConfigurationError, match="must be a name"):
        NatsBroker("nats://127.0.0.1:4222/a.b")
