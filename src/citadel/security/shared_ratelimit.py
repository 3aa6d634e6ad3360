"""Token buckets in memory shared by the worker processes of one node, so that a limit holds per node.

``citadel serve --workers N`` forks N workers and each builds its own app: with ``MemoryRateLimiter`` each
worker counts alone, and a node lets N bursts through. ``SharedBuckets`` is created in the parent, before the
fork: an anonymous shared memory map, which every forked worker inherits, holding a fixed table of buckets,
and locks that every worker inherits too. ``SharedMemoryRateLimiter`` checks requests against it with the
semantics (and so the headers) of ``MemoryRateLimiter``.

The table is ``slots`` slots of 32 bytes: the key's hash (0 when empty), its tokens, when they were last
updated and when the bucket will be full again. Slots form sets of 8; a key lives in any slot of the one set
its hash names (8-way set associative, as CPU caches are), so a check reads 8 slots at most. A new key takes
an empty slot of its set, else one whose bucket is full again by now (forgetting it changes nothing), else
the least recently updated one: that key starts again with a full bucket, and ``evictions`` counts it.

Every set is guarded by one of ``locks`` process-shared locks (set i by lock i % locks, so workers rarely want
the same one). A check holds it only to read and write its set: arithmetic, never I/O or an await. A worker that
finds it taken tries again at once a few times before sleeping until it is free (the row ``shared``, 2
processes, 1 key of ``bench/ratelimit.py`` measures that contended case). A worker killed while holding a lock
would stop every other worker at it, so a lock not released within ``_STUCK_AFTER`` seconds, far longer than any
check holds it, is taken to be abandoned and released.

Times come from ``time.monotonic``: CLOCK_MONOTONIC is system-wide, so every worker reads the same clock. Keys
are hashed with BLAKE2b keyed by a secret drawn when the table is made: the same in every worker (inherited),
and unknown to clients, who therefore cannot choose keys that share a bucket or a set.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import multiprocessing
import os
import struct
import time
from collections.abc import Callable
from multiprocessing.synchronize import Lock as ProcessLock

from citadel.errors import ConfigurationError
from citadel.security.buckets import Decision, RateRule, check_cost, take

__all__ = ["SharedBuckets", "SharedMemoryRateLimiter"]

log = logging.getLogger("citadel.ratelimit")

WAYS = 8
"""Slots per set: the most slots a check reads, and where a key may live."""

_SLOT = struct.Struct("<Qddd")  # key hash (0: empty), tokens, updated at, full at
_SET = struct.Struct("<" + "Qddd" * WAYS)
_HASHES = struct.Struct("<" + "Q24x" * WAYS)  # only the key hashes of a set: what finding a key needs
_STATE = struct.Struct("<dd")  # tokens and updated at, 8 bytes into a slot
_FIELDS = 4
_COUNTER = struct.Struct("<Q")
_MAX_SLOTS = 1 << 22  # 128 MiB of table: far beyond any node's live keys
_MAX_LOCKS = 1024
# Each process remembers where its recent keys live, so that a repeat is not hashed again; long keys are not
# remembered, so this stays a few MB at most, and the table is cleared when full (the simplest eviction).
_PLACES = 16_384
_MAX_CACHED_KEY = 128
_SPINS = 100  # tries before sleeping in the kernel; a lock is usually free again well within them
# A check holds its lock for microseconds; a lock held this long belongs to a process that died holding it.
_STUCK_AFTER = 1.0


class SharedBuckets:
    """A fixed table of token buckets in shared memory, for the processes forked after it is made.

    Make it in the parent before forking the workers; each worker then builds a ``SharedMemoryRateLimiter``
    on it. It takes ``slots * 32`` bytes, whatever keys arrive.

    Raises:
        ConfigurationError: ``slots`` is not a multiple of 8 between 8 and 4,194,304, ``locks`` is not
            between 1 and 1024, or the system cannot make process-shared locks.
    """

    def __init__(self, slots: int = 65_536, *, locks: int = 64) -> None:
        if not isinstance(slots, int) or not WAYS <= slots <= _MAX_SLOTS or slots % WAYS:
            raise ConfigurationError(
                f"slots is {slots!r}; give a multiple of {WAYS} between {WAYS} and {_MAX_SLOTS} "
                "(each slot holds one key's bucket in 32 bytes; the default 65,536 takes 2 MiB)"
            )
        if not isinstance(locks, int) or not 1 <= locks <= _MAX_LOCKS:
            raise ConfigurationError(f"locks is {locks!r}; give a number of locks between 1 and {_MAX_LOCKS}")
        self.slots = slots
        self._sets = slots // WAYS
        self._table_at = locks * _COUNTER.size  # one eviction counter per lock, written under that lock
        # Anonymous maps are MAP_SHARED: a forked child writes to the same pages, not to a copy.
        self._memory = mmap.mmap(-1, self._table_at + slots * _SLOT.size)
        try:
            context = multiprocessing.get_context("fork")
            self._locks = [context.Lock() for _ in range(locks)]
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot make process-shared locks ({exc}); check that /dev/shm is mounted and writable, "
                "or use MemoryRateLimiter (one process) or RedisRateLimiter"
            ) from exc
        self._secret = os.urandom(16)
        self._places: dict[tuple[str, str], tuple[int, int, int]] = {}

    def __len__(self) -> int:
        """Return the number of slots holding a bucket (read without locks: a snapshot)."""
        table = self._memory[self._table_at :]  # a copy: a view would keep the map from closing
        return sum(1 for (key_hash,) in struct.iter_unpack("<Q24x", table) if key_hash)

    @property
    def evictions(self) -> int:
        """Buckets forgotten while still refilling, to make room for new keys (a sign the table is too small)."""
        return sum(_COUNTER.unpack_from(self._memory, i * _COUNTER.size)[0] for i in range(len(self._locks)))

    def take(self, key: str, rule: RateRule, cost: int, clock: Callable[[], float] = time.monotonic) -> Decision:
        """Take ``cost`` tokens from the bucket of ``key`` under ``rule`` if it holds them; return the decision.

        ``cost`` must lie between 1 and the rule's burst (``SharedMemoryRateLimiter.check`` makes sure).
        """
        place = self._places.get((rule.name, key))
        if place is None:
            place = self._place(rule.name, key)
        key_hash, offset, lock_index = place
        memory = self._memory
        burst = rule.burst
        lock = self._locks[lock_index]
        _acquire(lock)
        try:
            now = clock()
            hashes = _HASHES.unpack_from(memory, offset)
            if key_hash in hashes:
                at = offset + hashes.index(key_hash) * _SLOT.size
                tokens, updated_at = _STATE.unpack_from(memory, at + 8)
                elapsed = now - updated_at
                tokens = tokens + elapsed * rule.rate if elapsed > 0.0 else tokens
                if tokens > burst:
                    tokens = float(burst)
            else:
                at = offset + self._make_room(offset, lock_index, now) * _SLOT.size
                tokens = float(burst)
            decision, tokens = take(rule, tokens, cost)
            _SLOT.pack_into(memory, at, key_hash, tokens, now, now + decision.reset)
        finally:
            with contextlib.suppress(ValueError):  # released already, by a process that found it abandoned
                lock.release()
        return decision

    def _place(self, name: str, key: str) -> tuple[int, int, int]:
        """Return the hash of a bucket's key, the offset of its set and the index of the set's lock."""
        data = b"%s\0%s" % (name.encode("ascii"), key.encode("utf-8", "surrogatepass"))
        digest = hashlib.blake2b(data, digest_size=8, key=self._secret).digest()
        key_hash = int.from_bytes(digest, "little") or 1  # 0 marks an empty slot
        index = key_hash % self._sets
        place = key_hash, self._table_at + index * _SET.size, index % len(self._locks)
        if len(key) <= _MAX_CACHED_KEY:  # a long key would hold memory; it is hashed anew each time
            if len(self._places) >= _PLACES:
                self._places.clear()
            self._places[name, key] = place
        return place

    def _make_room(self, offset: int, lock_index: int, now: float) -> int:
        """Return the slot of the set at ``offset`` a new key takes; called holding the set's lock."""
        memory = self._memory
        fields = _SET.unpack_from(memory, offset)
        for way in range(WAYS):
            if not fields[way * _FIELDS] or fields[way * _FIELDS + 3] <= now:  # empty, or full again by now
                return way
        updated = fields[2::_FIELDS]
        counter_at = lock_index * _COUNTER.size
        _COUNTER.pack_into(memory, counter_at, _COUNTER.unpack_from(memory, counter_at)[0] + 1)
        return updated.index(min(updated))

    def close(self) -> None:
        """Unmap the table in this process; other processes keep theirs. Checks on it fail afterwards."""
        self._memory.close()


def _acquire(lock: ProcessLock) -> None:
    # A lock is held for a few microseconds: trying again at once costs less than sleeping in the kernel until
    # the holder wakes this process up.
    for _ in range(_SPINS):
        if lock.acquire(False):
            return
    while not lock.acquire(timeout=_STUCK_AFTER):
        log.warning(
            "a rate limit lock was held for over %s s, by a worker that died holding it; releasing it", _STUCK_AFTER
        )
        with contextlib.suppress(ValueError):  # another waiter released it first
            lock.release()


class SharedMemoryRateLimiter:
    """Buckets shared by every worker process of this node (``SharedBuckets``); each node still counts alone.

    Same rules, decisions and headers as ``MemoryRateLimiter``. Build one per worker, after the fork, on the
    ``SharedBuckets`` made before it.
    """

    def __init__(self, buckets: SharedBuckets, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.buckets = buckets
        self._clock = clock

    async def check(self, key: str, rule: RateRule, cost: int = 1) -> Decision:
        """Take ``cost`` tokens from the node's bucket for ``key`` if it holds them (see ``RateLimiter``)."""
        if not 1 <= cost <= rule.burst:
            check_cost(rule, cost)
        return self.buckets.take(key, rule, cost, self._clock)

    async def close(self) -> None:
        """Release nothing: the table is the node's, shared with the other workers (see ``SharedBuckets.close``)."""
