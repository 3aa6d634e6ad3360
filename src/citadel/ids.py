"""Identifiers: time-ordered UUIDs (version 7, RFC 9562).

Time-ordered ids keep index inserts at the right edge of a B-tree, which matters when ids are keys. The 74
random bits come from the process's Mersenne Twister (seeded from the OS, reseeded after fork): ids must be
unique, not secret, and a system call per id would cost more than the rest of an append.
"""

from __future__ import annotations

import random
import time

__all__ = ["new_id"]

_VERSION_AND_VARIANT = (0x7 << 76) | (0x2 << 62)
_RANDOM = ((1 << 80) - 1) & ~((0xF << 76) | (0x3 << 62))  # the 80 bits after the time, less version and variant
_getrandbits = random.getrandbits
_time_ns = time.time_ns


_stamp: tuple[int, str] = (-1, "")  # the current millisecond and its 14-character text (cached: ids come in bursts)


def new_id() -> str:
    """Return a new random UUIDv7 as its 36-character lowercase string."""
    global _stamp
    ms = _time_ns() // 1_000_000
    stamp = _stamp
    if stamp[0] != ms:
        t = ms.to_bytes(6, "big").hex()
        stamp = _stamp = (ms, f"{t[:8]}-{t[8:]}-")
    h = (_getrandbits(80) & _RANDOM | _VERSION_AND_VARIANT).to_bytes(10, "big").hex()  # faster than int formatting
    return f"{stamp[1]}{h[:4]}-{h[4:8]}-{h[8:]}"
