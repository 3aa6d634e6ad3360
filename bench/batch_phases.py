"""Where the SQLite command path spends a batch: running its jobs, committing it, and everything else.

Runs the ``command path`` row of ``bench/store.py`` (``Application.dispatch`` of a creating command with an
inline projection, from ``--dispatchers`` concurrent dispatchers, durable commits) with the loop writer's two
phases timed from outside: ``_ready_to_commit`` (BEGIN has been taken; the batch's jobs run: inserts, inline
projections, idempotency records) and the COMMIT (on the loop, or on the committer thread while commits are
slow). What is left of the wall time is the dispatchers' own work (decide, encode, ids) and the loop's.

A second table times SQLite's event insert alone, in memory: one-row ``executemany`` calls (what a batch does
now, one per job) against 1,000-row calls (what merging a batch's inserts would do).

Usage: ``python bench/batch_phases.py [--dispatchers 1000] [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop

import store as store_bench
from citadel.store.sqlite import writer as sqlite_writer
from citadel.tuning import tune_for_serving

_EVENT_TABLE = """CREATE TABLE citadel_events (
    position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, version INTEGER NOT NULL, event_id TEXT NOT NULL,
    type TEXT NOT NULL, schema_version INTEGER NOT NULL, data BLOB NOT NULL, recorded_at REAL NOT NULL,
    correlation_id TEXT, causation_id TEXT, actor TEXT, UNIQUE (stream_id, version))"""
_INSERT = "INSERT INTO citadel_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


class _Phases:
    """Accumulates the writer's phase times by wrapping its methods for the length of one run."""

    def __init__(self) -> None:
        self.jobs = 0.0
        self.commits = 0.0
        self.batches = 0
        self._restore: tuple[Any, Any] = (None, None)

    def install(self) -> None:
        ready = sqlite_writer.GroupCommitWriter._ready_to_commit
        timed = sqlite_writer.LoopWriter._timed
        phases = self

        def timed_ready(self: Any, tx: Any, jobs: Any, head: int, *, begun: bool) -> bool:
            started = time.perf_counter()
            try:
                return bool(ready(self, tx, jobs, head, begun=begun))
            finally:
                phases.jobs += time.perf_counter() - started
                phases.batches += 1

        def timed_commit(self: Any, seconds: float) -> None:
            phases.commits += seconds  # every commit's wall time, on the loop or on the thread
            timed(self, seconds)

        sqlite_writer.GroupCommitWriter._ready_to_commit = timed_ready  # type: ignore[method-assign]
        sqlite_writer.LoopWriter._timed = timed_commit  # type: ignore[method-assign]
        self._restore = (ready, timed)

    def uninstall(self) -> None:
        ready, timed = self._restore
        sqlite_writer.GroupCommitWriter._ready_to_commit = ready  # type: ignore[method-assign]
        sqlite_writer.LoopWriter._timed = timed  # type: ignore[method-assign]


async def command_path(dispatchers: int, seconds: float) -> None:
    phases = _Phases()
    phases.install()
    try:
        with tempfile.TemporaryDirectory(prefix="citadel-bench-", dir=os.environ.get("BENCH_DIR")) as folder:
            cpu = time.process_time()
            row = await store_bench.bench_command_path(Path(folder), dispatchers, seconds)
            cpu = time.process_time() - cpu
    finally:
        phases.uninstall()
    wall, batches, events = row["seconds"], max(phases.batches, 1), row["events"]
    other = wall - phases.jobs - phases.commits
    print(
        f"command path, {dispatchers} dispatchers, {wall:.1f} s: {row['events_per_s']:,} events/s, "
        f"{row['events_per_commit']} events per batch, process CPU {cpu / wall:.2f} cores"
    )
    print(f"{'phase':<34}{'share of wall':>14}{'ms/batch':>10}{'us/event':>10}")
    for name, spent in (
        ("batch's jobs (inserts, projections)", phases.jobs),
        ("COMMIT (loop or committer thread)", phases.commits),
        ("the rest (dispatch: decide, encode)", other),
    ):
        print(f"{name:<34}{spent / wall:>13.0%}{spent / batches * 1000:>10.2f}{spent / max(events, 1) * 1e6:>10.2f}")


def insert_calls(rows: int = 100_000) -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute(_EVENT_TABLE)
    db.execute("BEGIN")
    payload = b"x" * 300
    values = [(n, f"s{n}", 1, f"e{n}", "t", 1, payload, 1.0, None, None, None) for n in range(2 * rows)]
    started = time.perf_counter()
    for value in values[:rows]:
        db.executemany(_INSERT, [value])
    single = time.perf_counter() - started
    started = time.perf_counter()
    for at in range(rows, 2 * rows, 1000):
        db.executemany(_INSERT, values[at : at + 1000])
    merged = time.perf_counter() - started
    db.close()
    print(f"\nevent insert in memory, {rows:,} rows each:")
    print(f"  one-row executemany calls    {single / rows * 1e6:6.2f} us/row")
    print(f"  1,000-row executemany calls  {merged / rows * 1e6:6.2f} us/row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dispatchers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    tune_for_serving()
    uvloop.run(command_path(args.dispatchers, args.seconds))
    insert_calls()


if __name__ == "__main__":
    main()
