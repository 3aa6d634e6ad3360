"""How contract messages become HTTP routes.

``orders.CreateOrder`` (a command) is ``POST /orders/create-order``; ``orders.GetOrder`` (a query) is
``GET /orders/order`` (a leading ``Get`` is dropped: the path names what is read).
"""

from __future__ import annotations

import re

__all__ = ["command_path", "kebab", "query_path"]

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def kebab(name: str) -> str:
    """``CreateOrder`` → ``create-order``; ``OrdersByStatus`` → ``orders-by-status``; ``HTTPCheck`` → ``http-check``."""
    return _BOUNDARY.sub("-", name).lower()


def command_path(module: str, class_name: str) -> str:
    """The path of a command: ``/{module}/{kebab(ClassName)}``."""
    return f"/{module}/{kebab(class_name)}"


def query_path(module: str, class_name: str) -> str:
    """The path of a query: ``/{module}/{kebab(ClassName without a leading Get)}``."""
    name = class_name[3:] if class_name.startswith("Get") and class_name[3:4].isupper() else class_name
    return f"/{module}/{kebab(name)}"
