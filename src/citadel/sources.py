"""Reading a handler's source: what its names refer to. The wiring checks and the module documenter both parse
handlers (``ast``) and need the objects behind the names they find."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

__all__ = ["names_seen_by", "resolve"]


def names_seen_by(function: Any) -> dict[str, Any]:
    """The globals a function sees, and the variables it closes over."""
    found = dict(function.__globals__)
    for name, cell in zip(function.__code__.co_freevars, function.__closure__ or (), strict=True):
        try:
            found[name] = cell.cell_contents
        except ValueError:  # a variable the function closes over that is not assigned yet
            continue
    return found


def resolve(node: ast.expr, names: Mapping[str, Any]) -> Any:
    """The object a name or dotted name refers to (None when it is anything else)."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        return getattr(resolve(node.value, names), node.attr, None)
    return None
