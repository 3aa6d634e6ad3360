"""The store's lifecycle: every port of one store is usable between ``open`` and ``close``."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Lifecycle"]


class Lifecycle(Protocol):
    """Opening and closing a store (all of its ports at once)."""

    async def open(self) -> None:
        """Connect, create or migrate the schema, start background writers."""

    async def close(self) -> None:
        """Finish pending writes and release every resource."""
