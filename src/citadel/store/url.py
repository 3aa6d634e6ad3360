"""Choosing a backend from a store URL (``sqlite:///shop.db``, ``postgresql://...``, ``memory://``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from citadel.errors import ConfigurationError
from citadel.extras import require
from citadel.messages import EventRegistry
from citadel.store.base import EventStore
from citadel.store.dsn import redacted

__all__ = ["check_store_url", "open_store", "redacted", "sqlite_path"]


def sqlite_path(url: str) -> Path | None:
    """Return the file a ``sqlite://`` URL names, or None for another scheme."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        return None
    return Path(parts.path[1:] if parts.path.startswith("/") else parts.path)


def open_store(url: str, registry: EventRegistry, **options: Any) -> EventStore:
    """Build (without opening) the event store a URL names.

    ``sqlite:///relative/file.db`` and ``sqlite:////absolute/file.db`` select SQLite (query parameters
    ``synchronous``, ``group_commit`` and ``writer`` tune it); ``postgresql://user@host:5432/database`` selects
    PostgreSQL; ``memory://`` a new, empty in-memory store (for tests: nothing outlives the process).

    Raises:
        ConfigurationError: the URL's scheme is unknown or its path is missing, ``memory://`` has anything after
            it, or PostgreSQL's extra is not installed.
    """
    parts = urlsplit(url)
    if parts.scheme == "memory":
        if url.rstrip("/") != "memory:":
            raise ConfigurationError(f"store URL {url!r}: an in-memory store takes no name or options; write memory://")
        from citadel.store.memory import MemoryEventStore

        return MemoryEventStore(registry, **options)
    if parts.scheme == "sqlite":
        from citadel.store.sqlite import SQLiteEventStore

        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ConfigurationError(f"store URL {url!r} has no file path; write sqlite:///var/app.db")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if "synchronous" in query:
            options.setdefault("synchronous", query["synchronous"])
        if "group_commit" in query:
            options.setdefault("group_commit", query["group_commit"].lower() not in ("0", "false", "off"))
        if "writer" in query:
            options.setdefault("writer", query["writer"])
        return SQLiteEventStore(path, registry, **options)
    if parts.scheme in ("postgresql", "postgres"):
        require("asyncpg", "postgres", "the PostgreSQL store")
        from citadel.store.postgres import PostgresEventStore

        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if "group_commit" in query:
            options.setdefault("group_commit", query["group_commit"].lower() not in ("0", "false", "off"))
        dsn = url.split("?", 1)[0] if "group_commit" in query else url
        return PostgresEventStore(dsn, registry, **options)
    check_store_url(url)
    raise AssertionError("unreachable: check_store_url refuses every other scheme")


def check_store_url(url: str) -> None:
    """Refuse a store URL of a scheme no store has.

    Raises:
        ConfigurationError: the scheme is unknown (the message shows the forms to use).
    """
    scheme = urlsplit(url).scheme
    if scheme not in ("sqlite", "postgresql", "postgres", "memory"):
        raise ConfigurationError(
            f"unknown store URL scheme {scheme!r} in {url!r}; use sqlite:///path/to/file.db, "
            "postgresql://user@host:5432/database or memory://"
        )
