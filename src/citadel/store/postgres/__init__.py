"""The PostgreSQL event store (``PostgresEventStore``, in ``store``), one module per port."""

from __future__ import annotations

from citadel.store.postgres.store import PostgresEventStore

__all__ = ["PostgresEventStore"]
