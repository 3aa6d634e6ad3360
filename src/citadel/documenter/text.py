"""Text the documenter writes: type annotations as readers know them, docstring summaries, Mermaid labels."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from citadel.errors import ConfigurationError
from citadel.http.docstrings import summary_and_description

__all__ = ["MAP_PAGE", "mermaid_label", "page_of", "summary_of", "type_name"]

MAP_PAGE = "modules.md"
"""The page of the module map, beside the modules' canvases."""

_PAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_MERMAID_ENTITIES = {"&": "#amp;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;", "\n": " "}


def type_name(hint: Any) -> str:
    """Return a resolved annotation as written in source, without ``Annotated`` constraints: ``list[OrderItem]``,
    ``str | None``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return type_name(args[0])
    if hint is None or hint is type(None):
        return "None"
    if hint is Ellipsis:
        return "..."
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is not None:
        name = getattr(origin, "__name__", None) or str(origin).removeprefix("typing.")
        return f"{name}[{', '.join(type_name(arg) for arg in args)}]" if args else name
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).removeprefix("typing.")


def summary_of(subject: Any) -> str:
    """Return the first paragraph of an object's own docstring as one line of Markdown ("" when it has none).

    Only the object's own docstring counts: a message class without one does not inherit ``Command``'s.
    """
    doc = vars(subject).get("__doc__") if isinstance(subject, type) else getattr(subject, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return ""
    return summary_and_description(doc)[0]


def mermaid_label(*lines: str) -> str:
    """Return ``lines`` as one quoted Mermaid label, a line each, their quotes, angle brackets, ampersands and
    pipes escaped (so any text is a safe label)."""
    escaped = ("".join(_MERMAID_ENTITIES.get(c, c) for c in line) for line in lines)
    return '"' + "<br/>".join(escaped) + '"'


def page_of(module: str) -> str:
    """Return the file name of a module's canvas: ``<module>.md``, or ``module-modules.md`` for a module called
    ``modules`` (whose own name would overwrite the map).

    Raises:
        ConfigurationError: the name is not a lowercase identifier (it could name a file outside the folder).
    """
    if not _PAGE_NAME.fullmatch(module):
        raise ConfigurationError(f"module names are lowercase identifiers like 'billing', got {module!r}")
    page = f"{module}.md"
    return f"module-{page}" if page == MAP_PAGE else page
