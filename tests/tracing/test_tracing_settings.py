"""The ``tracing`` setting: read like every setting, checked, and applied by ``configure`` with the application's
name and the modules a service runs; ``off`` leaves a provider the program installed in place."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import Tracer, TracerProvider

from citadel import Application
from citadel.config import Settings, load_settings
from citadel.errors import ConfigurationError
from citadel.setup import configure
from citadel.tracing import configure_tracing, enabled, tracer, use_provider


def test_the_tracing_setting_is_off_by_default_and_read_from_its_variable() -> None:
    assert load_settings(environ={}).tracing == "off"
    assert load_settings(environ={"CITADEL_TRACING": "otlp"}).tracing == "otlp"


def test_an_unknown_tracing_value_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="tracing"):
        load_settings(environ={"CITADEL_TRACING": "jaeger"})


def test_configure_installs_the_sdk_named_after_the_application_and_its_modules() -> None:
    app = Application([], store="sqlite:///unused.db", title="Shop")
    try:
        configure(app, Settings(tracing="console", modules="billing", encrypt=False))
        assert enabled()
        found = tracer()
        assert isinstance(found, Tracer)
        assert found.resource.attributes["service.name"] == "Shop [billing]"
    finally:
        configure_tracing("off")
    assert not enabled()


def test_configure_with_tracing_off_keeps_the_provider_a_program_installed() -> None:
    use_provider(TracerProvider())
    try:
        configure(Application([], store="sqlite:///unused.db"), Settings(encrypt=False))
        assert enabled()
    finally:
        use_provider(None)
