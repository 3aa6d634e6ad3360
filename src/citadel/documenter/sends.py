"""Which messages a handler sends, read from its source: the message classes it constructs.

A command or query handler sends another module's query as ``await ctx.query(GetUser(...))``; the class it
constructs names the message. Only the function's own body is read (not the helpers it calls), as the wiring
checks do; a handler whose source cannot be read (a built-in, a partial) sends nothing the documenter can see.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any, TypeVar

from citadel.messages import Message
from citadel.sources import names_seen_by, resolve

__all__ = ["constructed"]

M = TypeVar("M", bound=Message)


def constructed(function: Callable[..., Any], base: type[M]) -> frozenset[type[M]]:
    """Return the strict subclasses of ``base`` that ``function``'s body constructs (empty when its source
    cannot be read)."""
    target = inspect.unwrap(function)
    target = getattr(target, "__func__", target)  # a bound method: its function
    if not inspect.isfunction(target):
        return frozenset()
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(target)))
    except (OSError, TypeError, SyntaxError):
        return frozenset()
    names = names_seen_by(target)
    found: set[type[M]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            cls = resolve(node.func, names)
            if isinstance(cls, type) and issubclass(cls, base) and cls is not base:
                found.add(cls)
    return frozenset(found)
