"""The checkpoint port: how far each consumer has read the log, and the lease that lets one process run it.

A projection's page of view writes moves its checkpoint in the same transaction (``apply_projection``), fenced
by its lease: two processes can never both apply a page, and a crash never applies one twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from citadel.store.records import Lease, RecordedEvent
    from citadel.store.targets import ProjectionTarget

__all__ = ["Checkpoints"]


class Checkpoints(Protocol):
    """Consumers' checkpoints, their leases, and projection writes that move a checkpoint."""

    async def checkpoint(self, name: str) -> int | None:
        """Return the last position consumer ``name`` has processed, or None when it has no checkpoint."""

    async def apply_projection(
        self,
        projection: ProjectionTarget,
        records: Sequence[RecordedEvent],
        position: int,
        lease: Lease | None = None,
    ) -> None:
        """Apply ``records`` to ``projection`` and move its checkpoint to ``position``, in one transaction.

        With a ``lease``, the same transaction renews it, or fails with ``LeaseLost`` (writing nothing)
        when another owner holds it: two processes can never both apply a page.
        """

    async def save_checkpoint(self, name: str, position: int, lease: Lease | None = None) -> None:
        """Move consumer ``name``'s checkpoint forward to ``position`` (an older position changes nothing;
        only ``reset_projection`` moves it back). Fenced by ``lease`` like ``apply_projection``."""

    async def rewind_checkpoint(self, name: str, position: int = 0) -> None:
        """Move consumer ``name``'s checkpoint back to ``position`` and drop its lease, so that whichever process
        runs it next replays from there (an operator's tool: process managers replay idempotently)."""

    async def reset_projection(self, projection: ProjectionTarget) -> int:
        """Empty the projection's views, set its checkpoint to 0 and drop its lease, in one transaction;
        return the head position then. Whichever process holds the consumer next replays from zero."""

    async def acquire_lease(self, lease: Lease) -> bool:
        """Take or renew ``lease``; False while another owner holds an unexpired one."""

    async def release_lease(self, lease: Lease) -> None:
        """Give ``lease`` up at once (if held by its owner), so another process can take over."""
