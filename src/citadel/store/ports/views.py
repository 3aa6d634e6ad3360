"""The view port: module-owned document tables (``citadel.views``), created, read, and rebuilt.

Inline projections write views inside the log's commits (``EventLog.add_inline_projection``); async ones write
them with their checkpoint (``Checkpoints.apply_projection``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from citadel.store.targets import ProjectionTarget
    from citadel.views import View, ViewReader

__all__ = ["ViewStore"]


class ViewStore(Protocol):
    """View tables: their schema, committed reads, and rebuilding an inline projection's."""

    async def ensure_views(self, views: Sequence[View[Any]]) -> None:
        """Create (or migrate) the tables of ``views``."""

    def view_reader(self, view: View[Any]) -> ViewReader[Any]:
        """Return read access to a view's committed documents."""

    async def rebuild_inline(
        self, projection: ProjectionTarget, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Empty an inline projection's views and replay the whole log into them in one transaction, so no
        commit (of any process) interleaves; return the position reached. ``progress(done, total)`` is called
        on the event loop as pages are applied."""
