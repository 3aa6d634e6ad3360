"""Identifiers: time-ordered UUIDs (version 7, RFC 9562).

Time-ordered ids keep index inserts at the right edge of a B-tree, which matters when ids are keys.
"""

from __future__ import annotations

import os
import time
import uuid

__all__ = ["new_id"]


def new_id() -> str:
    """Return a new random UUIDv7 as its 36-character string."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    # version 7 in bits 76..79, variant 0b10 in bits 62..63
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))
