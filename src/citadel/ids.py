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
_RANDOM_A = 0xFFF << 64  # 12 random bits after the version nibble
_RANDOM_B = (1 << 62) - 1  # 62 random bits after the variant


def new_id() -> str:
    """Return a new random UUIDv7 as its 36-character lowercase string."""
    bits = random.getrandbits(74)
    value = (
        (time.time_ns() // 1_000_000) << 80 | _VERSION_AND_VARIANT | ((bits >> 62) << 64) & _RANDOM_A | bits & _RANDOM_B
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
