"""What every SQL backend's view reader and writer share: the view's documents decoded to its type, and the
fields a ``find`` may filter on (its key, and the fields declared in ``indexes`` or ``unique``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from citadel.errors import ConfigurationError
from citadel.views import View

__all__ = ["ViewDocuments"]


class ViewDocuments:
    """One view's table name, document decoder and filterable fields."""

    def __init__(self, view: View[Any], table: str) -> None:
        self.view = view
        self.table = table
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(view.doc_type)
        self.fields = frozenset(view.indexes) | frozenset(view.unique)

    def decode(self, doc: str | bytes | None) -> Any:
        """The stored document as the view's type (None when there is none)."""
        return None if doc is None else self.decoder.decode(doc)

    def filters(self, where: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """The ``(field, value)`` pairs of a ``find``.

        Raises:
            ConfigurationError: a field is neither the key nor indexed (a scan of the whole view, refused).
        """
        for field, value in where.items():
            if field not in self.fields and field != "key":
                raise ConfigurationError(
                    f"view {self.view.qualified_name} has no index on {field!r}; add it to indexes=(...)"
                )
            yield field, value
