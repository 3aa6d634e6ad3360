"""The directory where forked workers share their metric values, for as long as the node serves."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from prometheus_client import multiprocess

from citadel.metrics.registry import MULTIPROC_ENV

__all__ = ["process_exited", "shared_values"]


@contextlib.contextmanager
def shared_values() -> Iterator[str]:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at a new private directory (before forking the workers), and remove
    both on exit. A directory the environment already names is used as it is, and kept."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        yield given
        return
    path = tempfile.mkdtemp(prefix="citadel-metrics-")  # mode 0700: only this user reads what workers write
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def process_exited(pid: int) -> None:
    """Drop the live gauges of a worker that has exited (its counters stay in the sums)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
