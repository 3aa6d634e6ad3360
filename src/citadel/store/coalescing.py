"""Reads that concurrent callers share: the keys asked during one turn of the event loop, read together.

On a database across a socket every read is a round trip: a backend woken, a core handed over and back. Under
load many requests ask the same kind of read during one turn of the loop; sending their keys as one query at
the start of the next turn costs one round trip for all of them (and one turn of latency when a read is alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

from citadel.errors import StoreError

__all__ = ["TurnBatch"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TurnBatch(Generic[K, V]):
    """Collects the keys asked during one turn of the event loop and reads them together at the start of the
    next with ``read_many(keys)``, which returns ``{key: value}`` (a key it leaves out gets ``missing``). Every
    caller of a key gets the value read for it (callers must not change it). When a read of several keys fails,
    each key is read again alone, so that a bad key fails its own callers only; the next turn reads anew.
    """

    def __init__(self, read_many: Callable[[list[K]], Awaitable[dict[K, V]]], missing: V) -> None:
        self._read_many = read_many
        self._missing = missing
        self._asked: dict[K, list[asyncio.Future[V]]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the keys in ``_asked`` wait on
        self._reading: set[asyncio.Task[None]] = set()
        self.reads = 0
        """Reads sent so far (each for one or more keys)."""

    async def get(self, key: K) -> V:
        """Return the value read for ``key`` with the other keys of this turn.

        Raises:
            Whatever ``read_many`` raised.
        """
        loop = asyncio.get_running_loop()
        asked = self._asked
        if asked is None or self._loop is not loop:  # (a loop that stopped before sending leaves its keys behind)
            asked = self._asked = {}
            self._loop = loop
            loop.call_soon(self._send, asked)
        waiter: asyncio.Future[V] = loop.create_future()
        waiting = asked.get(key)
        if waiting is None:
            asked[key] = [waiter]
        else:
            waiting.append(waiter)
        return await waiter

    def _send(self, asked: dict[K, list[asyncio.Future[V]]]) -> None:
        if self._asked is asked:
            self._asked = None
        task = asyncio.ensure_future(self._read(asked))
        self._reading.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._reading.discard)

    async def _read(self, asked: dict[K, list[asyncio.Future[V]]]) -> None:
        self.reads += 1
        try:
            found = await self._read_many(list(asked))
        except Exception as exc:
            if len(asked) == 1:
                self._fail(asked.values(), exc)
                return
            for key, waiters in asked.items():  # rare: find the bad key(s), each answered on its own
                await self._read({key: waiters})
            return
        except BaseException:
            self._fail(asked.values(), StoreError("the read was stopped (the store is closing)"))
            raise
        missing = self._missing
        for key, waiters in asked.items():
            value = found.get(key, missing)
            for waiter in waiters:
                if not waiter.done():  # a caller that gave up (cancelled) is skipped
                    waiter.set_result(value)

    @staticmethod
    def _fail(waiting: Iterable[list[asyncio.Future[V]]], error: BaseException) -> None:
        for waiters in waiting:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
