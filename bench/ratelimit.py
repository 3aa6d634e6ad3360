"""Rate-limit checks: the in-process limiter against the one whose buckets the workers of a node share.

Rows, each a loop of ``await limiter.check(key, rule)`` (rule: 1,000 per second, burst 100):

* ``memory``: ``MemoryRateLimiter``, buckets in the process.
* ``shared``: ``SharedMemoryRateLimiter`` on a default ``SharedBuckets`` table (65,536 slots, 64 locks).

each in one process, then in two processes forked after the limiter is made and checking at once (``memory``:
two private copies; ``shared``: one table), over one hot key (every check of both processes on one lock) and
over 10,000 keys (each process cycling through them from a different place).
``µs/check`` is a process's time per check (the mean over the processes); ``checks/s`` counts every process.

Usage: ``python bench/ratelimit.py [--checks 200000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import time
from collections.abc import Callable

from citadel.security.ratelimit import MemoryRateLimiter, RateLimiter, RateRule
from citadel.security.shared_ratelimit import SharedBuckets, SharedMemoryRateLimiter

RULE = RateRule(rate=1_000, burst=100)
FORK = multiprocessing.get_context("fork")


async def hammer(limiter: RateLimiter, keys: list[str], checks: int, first: int = 0) -> float:
    """Run ``checks`` checks cycling through ``keys`` from the ``first``; return the seconds they took."""
    started = time.perf_counter()
    count = len(keys)
    for i in range(first, first + checks):
        await limiter.check(keys[i % count], RULE)
    return time.perf_counter() - started


def run(make: Callable[[], RateLimiter], keys: list[str], checks: int, processes: int) -> tuple[float, float]:
    """Return (µs per check in one process, checks per second over all) for ``processes`` forked at once."""
    limiter = make()  # before the fork, as ``citadel serve --workers`` does
    if processes == 1:
        asyncio.run(hammer(limiter, keys, checks // 10))  # warm up
        seconds = asyncio.run(hammer(limiter, keys, checks))
        return seconds / checks * 1e6, checks / seconds
    start = FORK.Barrier(processes)
    results = FORK.SimpleQueue()

    def child(first: int) -> None:
        asyncio.run(hammer(limiter, keys, checks // 10))
        start.wait()
        results.put(asyncio.run(hammer(limiter, keys, checks, first)))

    # Each process starts elsewhere in the keys: clients' requests reach workers at random, not in lockstep.
    workers = [FORK.Process(target=child, args=(p * len(keys) // processes,)) for p in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    times = [results.get() for _ in workers]
    return sum(times) / len(times) / checks * 1e6, processes * checks / max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=200_000, help="checks per process and row")
    args = parser.parse_args()
    limiters: dict[str, Callable[[], RateLimiter]] = {
        "memory": MemoryRateLimiter,
        "shared": lambda: SharedMemoryRateLimiter(SharedBuckets()),
    }
    workloads = {"1 key": ["hot"], "10,000 keys": [f"client-{i}" for i in range(10_000)]}
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {args.checks:,} checks per process and row\n")
    print(f"| {'limiter':<8} | {'processes':>9} | {'keys':<11} | {'µs/check':>8} | {'checks/s':>10} |")
    print(f"|{'-' * 10}|{'-' * 10}:|{'-' * 13}|{'-' * 9}:|{'-' * 11}:|")
    for processes in (1, 2):
        for workload, keys in workloads.items():
            for name, make in limiters.items():
                micros, rate = run(make, keys, args.checks, processes)
                print(f"| {name:<8} | {processes:>9} | {workload:<11} | {micros:>8.2f} | {rate:>10,.0f} |", flush=True)


if __name__ == "__main__":
    main()
