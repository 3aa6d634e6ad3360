"""Process-wide settings for a process that serves: the garbage collector and the interpreter lock's switch interval.

CPython's cycle collector runs a young-generation pass every 700 net allocations of container objects. A
serving process allocates and frees hundreds of thousands of short-lived objects per second (requests, tasks,
futures, rows), and on this project's command-path benchmark those passes, with the full passes they trigger
over everything the application loaded, took about a quarter of the CPU. ``tune_gc`` makes both rarer and
takes what startup built out of their reach; ``citadel serve`` calls it in each worker once the application
has started, and ``bench/store.py`` in the benchmark's process. A library embedding Citadel in a process it
does not own should not call it.

``tune_switch_interval`` shortens how long a thread that wants the interpreter lock waits for the event loop to
let go of it (CPython's default is several times the one set here). The SQLite writer hands slow commits to a
thread, which needs the lock for a moment before and after each ``COMMIT``: with the default it started and
reported each commit late, and the commit overlapped little with the loop's work; with the shorter interval (and
the writer's ``overlap``) the command-path benchmark wrote more events per second (``bench/writer_overlap.py``:
alternating windows in one process). ``citadel serve`` applies both (``tune_for_serving``).
"""

from __future__ import annotations

import gc
import sys

__all__ = ["GC_THRESHOLDS", "SWITCH_INTERVAL", "tune_for_serving", "tune_gc", "tune_switch_interval"]

GC_THRESHOLDS = (20_000, 20, 50)
"""Young-generation pass every 20,000 net allocations (CPython: 700), the next generations after 20 and 50
passes of the previous one (CPython: 10 and 10)."""


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Collect once, move every object alive now (what startup built) out of the collector's passes
    (``gc.freeze``), and set the collector's ``thresholds``."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


SWITCH_INTERVAL = 0.001
"""Seconds a thread waiting for the interpreter lock lets the running one keep it (CPython: 0.005)."""


def tune_switch_interval(seconds: float = SWITCH_INTERVAL) -> None:
    """Set the interpreter's thread switch interval to ``seconds``."""
    sys.setswitchinterval(seconds)


def tune_for_serving() -> None:
    """Apply both settings, as ``citadel serve`` does in each worker once the application has started."""
    tune_gc()
    tune_switch_interval()
