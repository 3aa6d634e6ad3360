"""Optional extras: the packages that only some features need, imported when the feature is used.

``pip install citadel`` gives the core (SQLite, HTTP, the CLI). Each extra adds one feature's packages:
``postgres`` (asyncpg) a ``postgresql://`` store, ``nats`` (nats-py, nkeys) a broker between services, ``redis``
rate limits shared through Redis, ``granian`` ``citadel serve --server granian``, and ``otel`` the OpenTelemetry
SDK and its OTLP exporter; ``all`` installs every one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from citadel.errors import ConfigurationError

__all__ = ["EXTRAS", "require"]

EXTRAS = ("postgres", "nats", "redis", "granian", "otel")
"""The extras ``pip install 'citadel[...]'`` accepts (``all`` installs every one)."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, which ``feature`` needs and the ``extra`` installs, and return it.

    Raises:
        ConfigurationError: ``module`` is not installed; the message names the extra to install.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name != module and not module.startswith(exc.name + "."):
            raise  # the package is there, but something it imports is not: not a missing extra
        raise ConfigurationError(f"{feature} needs the {extra} extra: pip install 'citadel[{extra}]'") from exc
