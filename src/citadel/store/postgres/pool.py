"""The PostgreSQL store's connection pool: connections that keep no session state, closed after a cancel."""

from __future__ import annotations

from typing import Any

import asyncpg

__all__ = ["create_pool"]


class _Connection(asyncpg.Connection):
    """A pooled connection that remembers whether it ever sent a cancel request."""

    cancel_sent = False

    def _cancel_current_command(self, waiter: Any, cancel_waiter: Any = None) -> None:
        self.cancel_sent = True
        super()._cancel_current_command(waiter, cancel_waiter)  # type: ignore[misc]  # asyncpg's own hook


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is. The store leaves no session state on pooled connections (its
    advisory locks are transaction-scoped, it listens on a connection of its own, it sets nothing), so asyncpg's
    default reset query would cost a round trip on every release for nothing; the pool still rolls back a
    transaction left open. Code that borrows ``pool`` must not change session state either (``SET LOCAL``
    is fine).

    A connection whose query was cancelled (its task was, say a request whose client left) is closed instead:
    PostgreSQL acts on a cancel request asynchronously, so a late one would cancel the next borrower's query.
    """
    if getattr(connection, "cancel_sent", False):
        connection.terminate()  # the pool opens a new connection in its place


async def create_pool(dsn: str, max_size: int) -> Any:
    """Return an open pool of at most ``max_size`` connections to ``dsn``.

    Raises the driver's error (``OSError``, ``asyncpg.PostgresError``, ``asyncpg.InterfaceError``) when the
    server cannot be reached or refuses the connection.
    """
    return await asyncpg.create_pool(
        dsn, min_size=2, max_size=max_size, reset=_keep_session, connection_class=_Connection
    )
