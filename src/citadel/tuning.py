"""Process-wide settings for a process that serves: the garbage collector.

CPython's cycle collector runs a young-generation pass every 700 net allocations of container objects. A
serving process allocates and frees hundreds of thousands of short-lived objects per second (requests, tasks,
futures, rows), and on this project's command-path benchmark those passes, with the full passes they trigger
over everything the application loaded, took about a quarter of the CPU. ``tune_gc`` makes both rarer and
takes what startup built out of their reach; ``citadel serve`` calls it in each worker once the application
has started, and ``bench/store.py`` in the benchmark's process. A library embedding Citadel in a process it
does not own should not call it.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "tune_gc"]

GC_THRESHOLDS = (20_000, 20, 50)
"""Young-generation pass every 20,000 net allocations (CPython: 700), the next generations after 20 and 50
passes of the previous one (CPython: 10 and 10)."""


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Collect once, move every object alive now (what startup built) out of the collector's passes
    (``gc.freeze``), and set the collector's ``thresholds``."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
