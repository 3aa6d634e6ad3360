"""What a store needs from a projection to run it, and what the projection is given to write with."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from citadel.store.records import RecordedEvent
    from citadel.views import View, ViewWriter

__all__ = ["ProjectionTarget", "ViewTransaction"]


class ViewTransaction(Protocol):
    """Write access to views inside one store transaction."""

    def writer(self, view: View[Any]) -> ViewWriter[Any]:
        """Return the writer of ``view`` bound to this transaction."""


class ProjectionTarget(Protocol):
    """What a store needs from a projection to run it: its name, views, and how to apply an event."""

    @property
    def name(self) -> str:
        """Unique name; async projections keep their checkpoint under it."""

    @property
    def views(self) -> Sequence[View[Any]]:
        """The views this projection writes (cleared on rebuild)."""

    def handles(self, type_name: str) -> bool:
        """Return whether the projection has a handler for the stored event type name."""

    def apply(self, record: RecordedEvent, tx: ViewTransaction) -> Awaitable[None] | None:
        """Apply one event; an awaitable may only await the transaction's view reads."""
