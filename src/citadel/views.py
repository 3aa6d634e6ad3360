"""Read models: module-owned document tables that projections write and queries read.

A ``View`` declares one table: its name inside the module, the document type, and the document fields
to index (``indexes``) or to keep unique (``unique``). The framework creates the table in the owning module's
namespace (``<module>__<name>`` in SQLite) and hands a module only its own views.

A ``View`` is a declaration, shared freely: each ``Application`` binds its own copy to the module that owns it
(``bound``), so two applications of the same modules in one process keep apart. A projection handler writes a
view through the context it is given (``ctx.view(ORDERS)[key] = doc``), a query handler reads it through its
own (``await ctx.view(ORDERS).get(key)``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar, overload

from citadel.errors import AccessDenied, ConfigurationError

__all__ = ["View", "ViewReader", "ViewWriter"]

D = TypeVar("D")
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


class ViewWriter(Protocol[D]):
    """Write access to one view inside a projection's transaction. Writes apply in handler order."""

    def put(self, key: str, doc: D) -> None:
        """Insert or replace the document at ``key``."""

    def __setitem__(self, key: str, doc: D) -> None:
        """Same as ``put``."""

    def merge(self, key: str, **fields: Any) -> None:
        """Set top-level ``fields`` of the document at ``key``; nothing happens when there is none."""

    def increment(self, key: str, field: str, by: float = 1) -> None:
        """Add ``by`` to a numeric field, creating the document ``{field: by}`` when there is none.

        On SQLite, whole-number increments of a plainly named field (letters, digits, underscores) of a view
        without unique fields are summed per batch and written just before it commits (or before anything else
        reads or writes that view): a counter that a batch bumps a hundred times costs one statement, and an
        integer count comes out the same as if each had been written in turn.
        """

    def delete(self, key: str) -> None:
        """Remove the document at ``key`` if there is one."""

    def __delitem__(self, key: str) -> None:
        """Same as ``delete``."""

    async def get(self, key: str) -> D | None:
        """Return the document at ``key`` as seen by this transaction, or None."""

    async def find(self, *, limit: int = 100, **where: Any) -> list[D]:
        """Return up to ``limit`` documents whose fields equal ``where`` (use declared indexes)."""


class ViewReader(Protocol[D]):
    """Read access to one view from queries: committed data only."""

    async def get(self, key: str) -> D | None:
        """Return the document at ``key``, or None."""

    async def find(self, *, limit: int = 100, **where: Any) -> list[D]:
        """Return up to ``limit`` documents whose fields equal ``where``, in key order."""

    async def count(self, **where: Any) -> int:
        """Return how many documents match ``where``."""


class View(Generic[D]):
    """A module-owned document table.

    Args:
        name: the table's name inside its module (lowercase identifier).
        doc_type: what documents decode into: ``dict`` or a ``msgspec.Struct``.
        indexes: document fields queried with ``find``; each gets an index.
        unique: document fields whose values must be unique across the view (a write that breaks it raises
            ``UniqueViolation`` and rolls back the whole command or batch that caused it).
    """

    @overload
    def __init__(
        self: View[dict[str, Any]], name: str, *, indexes: Sequence[str] = (), unique: Sequence[str] = ()
    ) -> None: ...

    @overload
    def __init__(
        self, name: str, doc_type: type[D], *, indexes: Sequence[str] = (), unique: Sequence[str] = ()
    ) -> None: ...

    def __init__(
        self,
        name: str,
        doc_type: type[Any] = dict,
        *,
        indexes: Sequence[str] = (),
        unique: Sequence[str] = (),
    ) -> None:
        for ident in (name, *indexes, *unique):
            if not _IDENT.fullmatch(ident):
                raise ConfigurationError(f"view and field names are lowercase identifiers, got {ident!r}")
        self.name = name
        self.doc_type = doc_type
        self.indexes = tuple(indexes)
        self.unique = tuple(unique)
        self.module: str | None = None
        """The owning module, in a bound copy (``bound``) or a declaration bound by hand (``bind``)."""
        self.declaration: View[D] = self
        """The declaration a bound copy was made from (itself for a declaration)."""

    def bound(self, module: str) -> View[D]:
        """Return a copy of this declaration owned by ``module``: what one application hands its store.

        Raises:
            ConfigurationError: ``module`` is not a lowercase identifier.
        """
        if not _IDENT.fullmatch(module):
            raise ConfigurationError(f"module names are lowercase identifiers, got {module!r}")
        copy: View[D] = View(self.name, self.doc_type, indexes=self.indexes, unique=self.unique)
        copy.module = module
        copy.declaration = self.declaration
        return copy

    def bind(self, module: str) -> None:
        """Give this declaration itself to ``module``, for a store used without an application (a backend's
        tests); an ``Application`` never calls it, it binds copies of its own (``bound``).

        Raises:
            ConfigurationError: ``module`` is not a lowercase identifier, or another module already owns the view.
        """
        if not _IDENT.fullmatch(module):
            raise ConfigurationError(f"module names are lowercase identifiers, got {module!r}")
        if self.module is not None and self.module != module:
            raise ConfigurationError(
                f"view {self.name!r} belongs to module {self.module!r}; module {module!r} cannot own it too. "
                "Read another module's data through its public queries."
            )
        self.module = module

    @property
    def qualified_name(self) -> str:
        """``module.name``, once bound."""
        return f"{self.module}.{self.name}"

    def check_owner(self, module: str) -> None:
        """Raise ``AccessDenied`` unless ``module`` owns this view."""
        if self.module != module:
            raise AccessDenied(
                f"module {module!r} may not access view {self.qualified_name!r}; "
                f"ask module {self.module!r} through its public queries instead"
            )

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attribute = attr

    def __repr__(self) -> str:
        return f"View({self.qualified_name if self.module else self.name!r})"
