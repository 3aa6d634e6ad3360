"""View tables in memory: a dict of documents per view, with the unique fields' values indexed.

Documents are kept as their JSON (decoded into the view's type on every read, so a reader never shares an object
with a writer) beside the decoded fields that ``find`` compares and unique fields index. A ``MemoryViewWriter``
writes at once and records how to undo each write in its transaction (``transaction``): the memory store runs a
transaction without giving the event loop a turn, so no reader sees it half done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from citadel.errors import ConfigurationError, UniqueViolation
from citadel.views import View

__all__ = ["MemoryTable", "MemoryViewReader", "MemoryViewWriter", "table_name"]

_encoder = msgspec.json.Encoder()
Stored = tuple[bytes, Any]
"""A document as kept: its JSON, and that JSON decoded (dicts, lists, numbers, strings)."""


def table_name(view: View[Any]) -> str:
    """Return the table of a bound view: ``<module>__<name>``.

    Raises:
        ConfigurationError: the view belongs to no module.
    """
    if view.module is None:
        raise ConfigurationError(f"view {view.name!r} is not part of a module; list it in one")
    return f"{view.module}__{view.name}"


def _field(doc: Any, field: str) -> Any:
    return doc.get(field) if isinstance(doc, dict) else None


def _index_key(value: Any) -> bytes | None:
    """A unique field's value as an index key (None: not indexed, as SQL leaves NULL out of a unique index)."""
    return None if value is None else _encoder.encode(value)


class MemoryTable:
    """One view's documents by key, and for each unique field the key that holds each value."""

    def __init__(self, unique: tuple[str, ...]) -> None:
        self.docs: dict[str, Stored] = {}
        self.unique: dict[str, dict[bytes, str]] = {field: {} for field in unique}

    def set(self, key: str, stored: Stored | None) -> None:
        """Put (or with None, delete) the document at ``key`` without checking unique fields (an undo)."""
        self._unindex(key)
        if stored is None:
            self.docs.pop(key, None)
            return
        self.docs[key] = stored
        for field, index in self.unique.items():
            value = _index_key(_field(stored[1], field))
            if value is not None:
                index[value] = key

    def check(self, key: str, doc: Any) -> str | None:
        """The unique field whose value ``doc`` would share with another key's document, or None."""
        for field, index in self.unique.items():
            value = _index_key(_field(doc, field))
            if value is not None and index.get(value, key) != key:
                return field
        return None

    def _unindex(self, key: str) -> None:
        old = self.docs.get(key)
        if old is None:
            return
        for field, index in self.unique.items():
            value = _index_key(_field(old[1], field))
            if value is not None and index.get(value) == key:
                del index[value]


class _ViewReads:
    """Decoding and the reads shared by a view's reader and writer."""

    def __init__(self, view: View[Any], table: MemoryTable) -> None:
        self.view = view
        self.table = table
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(view.doc_type)
        self.fields = frozenset(view.indexes) | frozenset(view.unique)

    def _matching(self, where: dict[str, Any]) -> list[tuple[str, Stored]]:
        for field in where:
            if field not in self.fields and field != "key":
                raise ConfigurationError(
                    f"view {self.view.qualified_name} has no index on {field!r}; add it to indexes=(...)"
                )
        found = []
        for key, stored in self.table.docs.items():
            if all(
                value is not None and (key if field == "key" else _field(stored[1], field)) == value
                for field, value in where.items()
            ):
                found.append((key, stored))
        return found

    async def get(self, key: str) -> Any:
        stored = self.table.docs.get(key)
        return None if stored is None else self.decoder.decode(stored[0])

    async def find(self, *, limit: int = 100, **where: Any) -> list[Any]:
        found = sorted(self._matching(where), key=lambda item: item[0])[: max(limit, 0)]
        return [self.decoder.decode(stored[0]) for _, stored in found]


class MemoryViewReader(_ViewReads):
    """Reads one view's committed documents."""

    async def count(self, **where: Any) -> int:
        return len(self._matching(where))


class MemoryViewWriter(_ViewReads):
    """Writes to one view inside a transaction, each with its undo given to ``undo``."""

    def __init__(self, view: View[Any], table: MemoryTable, undo: Callable[[Callable[[], None]], None]) -> None:
        super().__init__(view, table)
        self._undo = undo

    def _write(self, key: str, doc: Any) -> None:
        """Store ``doc`` at ``key``, refusing a unique field's value that another key's document holds."""
        raw = _encoder.encode(doc)
        stored = (raw, msgspec.json.decode(raw))
        if self.table.check(key, stored[1]) is not None:
            raise UniqueViolation(self.view.qualified_name, ", ".join(self.view.unique))
        self._replace(key, stored)

    def _replace(self, key: str, stored: Stored | None) -> None:
        table = self.table
        old = table.docs.get(key)
        table.set(key, stored)
        self._undo(lambda: table.set(key, old))

    def put(self, key: str, doc: Any) -> None:
        self._write(key, doc)

    __setitem__ = put

    def merge(self, key: str, **fields: Any) -> None:
        old = self.table.docs.get(key)
        if old is None or not isinstance(old[1], dict):
            return
        self._write(key, {**old[1], **msgspec.json.decode(_encoder.encode(fields))})

    def increment(self, key: str, field: str, by: float = 1) -> None:
        old = self.table.docs.get(key)
        if old is None:
            self._write(key, {field: by})
            return
        doc = dict(old[1]) if isinstance(old[1], dict) else {}
        current = doc.get(field)
        doc[field] = (current if isinstance(current, int | float) else 0) + by
        self._write(key, doc)

    def delete(self, key: str) -> None:
        if key in self.table.docs:
            self._replace(key, None)

    __delitem__ = delete

    def clear(self) -> None:
        """Delete every document (used by rebuilds)."""
        for key in list(self.table.docs):
            self._replace(key, None)
