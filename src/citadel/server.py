"""Serving an application over HTTP with granian (one or more worker processes).

Workers are separate processes that import the application themselves; the settings reach them through
``CITADEL_*`` environment variables, and each builds its ASGI app with ``asgi_from_environment``.
"""

from __future__ import annotations

import os
from typing import Any

from citadel.config import Settings, load_settings
from citadel.errors import ConfigurationError
from citadel.http.asgi import create_asgi
from citadel.loading import load_application

__all__ = ["asgi_from_environment", "serve"]


def asgi_from_environment() -> Any:
    """Build the ASGI app from ``CITADEL_*`` settings (the factory each worker calls)."""
    settings = load_settings(path=None)
    if not settings.app:
        raise ConfigurationError("CITADEL_APP is not set; start the server with `citadel serve APP`")
    application = load_application(settings.app)
    if settings.store:
        application.use_store(settings.store)
    application.lease_ttl = settings.lease_ttl
    return create_asgi(application, title=settings.app)


def serve(settings: Settings) -> None:
    """Serve ``settings.app`` on ``settings.host:settings.port`` until interrupted."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    if not settings.app:
        raise ConfigurationError("no application given: pass APP (e.g. examples.shop:app) or set app in citadel.toml")
    application = load_application(settings.app)  # fail here, with a clear message, not in every worker
    store = settings.store or application.store_spec
    if not isinstance(store, str):
        raise ConfigurationError("`citadel serve` needs a store URL; pass --store or set store in citadel.toml")
    os.environ.update(
        {
            "CITADEL_APP": settings.app,
            "CITADEL_STORE": store,
            "CITADEL_LEASE_TTL": str(settings.lease_ttl),
        }
    )
    print(
        f"Citadel: serving {settings.app} on http://{settings.host}:{settings.port} "
        f"(docs: http://{settings.host}:{settings.port}/docs, store: {store}, workers: {settings.workers})",
        flush=True,
    )
    Granian(
        "citadel.server:asgi_from_environment",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        factory=True,
        log_level=LogLevels(settings.log_level),
        backlog=4096,
    ).serve()
