"""The driver errors that mean PostgreSQL or the connection to it is gone, as opposed to a statement it refused:
readers and the writer turn them into ``StoreError`` (503 with ``Retry-After``), since trying again later may work."""

from __future__ import annotations

import asyncpg

__all__ = ["BROKEN"]

BROKEN = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,  # the server is shutting down or restarting
)
"""Driver errors that mean the connection or server is gone (as opposed to a refused statement)."""
