"""``append`` as every backend writes it: a commit of one stream's events. Backends implement ``commit``."""

from __future__ import annotations

from collections.abc import Sequence

from citadel.messages import Event
from citadel.store.records import AppendResult, Commit, CommitResult, Metadata, StreamAppend

__all__ = ["AppendsThroughCommit"]


class AppendsThroughCommit:
    """Gives a backend's log ``append`` from its ``commit``, so the two can never disagree."""

    async def commit(self, commit: Commit) -> CommitResult:
        """Write a commit atomically (see ``EventStore.commit``): each backend's own."""
        raise NotImplementedError

    async def append(
        self,
        stream_id: str,
        events: Sequence[Event],
        expected_version: int | None = None,
        metadata: Metadata | None = None,
    ) -> AppendResult:
        """Append events to one stream (see ``EventStore.append``)."""
        result = await self.commit(Commit((StreamAppend(stream_id, events, expected_version),), metadata or Metadata()))
        return result.appends[0]
