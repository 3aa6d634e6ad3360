"""Settings: one file (``citadel.toml``), overridden by ``CITADEL_*`` environment variables, overridden by
command-line options. Read only when asked (never at import).

    # citadel.toml
    app = "examples.shop:app"
    store = "sqlite:///var/shop.db"
    host = "127.0.0.1"
    port = 8000
    workers = 1

The same keys work as environment variables: ``CITADEL_STORE=sqlite:///other.db``, ``CITADEL_PORT=9000``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from citadel.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where and how an application runs."""

    app: str | None = None
    """The application to run, as ``package.module:attribute``."""
    store: str | None = None
    """Event store URL; None keeps the application's own default."""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    lease_ttl: float = 5.0


def load_settings(path: Path | None = None, *, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Merge defaults, ``citadel.toml`` (or ``path``), ``CITADEL_*`` variables and ``overrides`` (None ignored).

    Raises:
        ConfigurationError: the file is not valid TOML, or a key or value is wrong (the message names it).
    """
    values: dict[str, Any] = {}
    file = path if path is not None else Path("citadel.toml")
    if path is not None and not file.exists():
        raise ConfigurationError(f"settings file {file} does not exist")
    if file.exists():
        try:
            values.update(tomllib.loads(file.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{file} is not valid TOML: {exc}") from exc
    fields = {f.name: f.type for f in msgspec.structs.fields(Settings)}
    env = os.environ if environ is None else environ
    for name in fields:
        raw = env.get(f"CITADEL_{name.upper()}")
        if raw is not None:
            values[name] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"invalid setting: {exc} (from {file}, CITADEL_* variables or options)") from exc
