"""How a PostgreSQL store learns of commits: one connection of its own ``LISTEN``s for them.

Every transaction that writes events notifies ``citadel_events``, and one that forgets data keys notifies
``citadel_keys`` with their ids (``batch``); PostgreSQL delivers a notification only if its transaction
commits, to every node. The listening connection is re-established after the server restarts; live
subscribers still poll, as the fallback when a notification is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

__all__ = ["EVENTS_CHANNEL", "KEYS_CHANNEL", "listen"]

log = logging.getLogger("citadel.store.postgres")

EVENTS_CHANNEL = "citadel_events"
KEYS_CHANNEL = "citadel_keys"


async def listen(
    dsn: str,
    *,
    retry_after: float,
    on_commit: Callable[[], None],
    on_keys_forgotten: Callable[[list[str]], None],
    on_connected: Callable[[], None],
) -> None:
    """Keep one connection listening for commits, reconnecting (``retry_after`` seconds later) when it is lost.

    Calls ``on_commit`` for every commit notified, ``on_keys_forgotten`` with the ids of forgotten data keys, and
    ``on_connected`` once listening (again), for what was committed or forgotten while nobody listened. Runs
    until cancelled.
    """
    while True:
        connection = None
        try:
            connection = await asyncpg.connect(dsn)
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _, lost=lost: lost.set())
            await connection.add_listener(EVENTS_CHANNEL, lambda *_: on_commit())
            await connection.add_listener(
                KEYS_CHANNEL, lambda _connection, _pid, _channel, payload: on_keys_forgotten(str(payload).split(","))
            )
            on_connected()
            await lost.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("listening for commits failed, retrying: %s", exc)
        finally:
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.shield(connection.close(timeout=1))
        await asyncio.sleep(retry_after)
