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


def new_id() -> str:
    """Return a new random UUIDv7 as its 36-character lowercase string."""
    value = (_time_ns() // 1_000_000) << 80 | _getrandbits(80) & _RANDOM | _VERSION_AND_VARIANT
    h = value.to_bytes(16, "big").hex()  # faster than formatting the int as hex
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
