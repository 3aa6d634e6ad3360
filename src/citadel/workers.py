"""Which of a node's serving workers this process is.

``citadel serve --workers N`` forks N workers and tells each its slot in the environment; the application
uses it to share the node's consumers out over the workers instead of leaving them all to whichever starts first.
"""

from __future__ import annotations

import os

__all__ = ["WORKER_SLOT", "worker_slot"]

WORKER_SLOT = "CITADEL_WORKER"
"""Environment variable that ``citadel serve`` sets in each worker it forks: ``index/count`` (``0/2``, ``1/2``)."""


def worker_slot() -> tuple[int, int] | None:
    """This process's place among the serving workers of its node, as ``(index, count)``; None outside such a
    worker (one process, a consumer process, tests)."""
    raw = os.environ.get(WORKER_SLOT, "")
    index, _, count = raw.partition("/")
    if not (index.isdigit() and count.isdigit()) or not int(index) < int(count):
        return None
    return int(index), int(count)
