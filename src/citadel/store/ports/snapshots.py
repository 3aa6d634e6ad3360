"""The snapshot port: a stream's folded state, so that loading it need not replay every event.

Snapshots have a port of their own because they are an optimisation, never the truth: a backend may keep none
(``load_snapshot`` returning None is always correct, the state is then folded from the events). A snapshot is
written by ``EventLog.commit`` (``Commit.snapshots``), in the transaction of the events it was folded from, so a
stored snapshot is never ahead of its stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from citadel.store.records import Snapshot

__all__ = ["Snapshots"]


class Snapshots(Protocol):
    """Reading the snapshots that commits store."""

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """Return the stream's latest snapshot, or None."""
