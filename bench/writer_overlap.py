"""What the loop writer's overlap and the thread switch interval each buy on the SQLite command path.

One application, ``--dispatchers`` concurrent dispatchers of ``bench/store.py``'s command (decide, append,
inline projection; durable commits), measured in short windows that rotate through four settings: the
writer's ``overlap`` on or off, and the interpreter's switch interval at CPython's 5 ms or at the serving
1 ms (``citadel.tuning``). The settings take turns in one process, in alternating order, so a machine
whose speed drifts from one minute to the next affects each alike; each setting's windows are compared
with the (off, 5 ms) windows of the same round.

Usage: ``python bench/writer_overlap.py [--dispatchers 1000] [--rounds 6] [--window 1.5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop

from citadel import Application
from citadel.store.sqlite import SQLiteEventStore
from citadel.store.sqlite.writer import LoopWriter
from citadel.tuning import SWITCH_INTERVAL, tune_gc
from store import Deposit, command_module

SETTINGS = [(False, 0.005), (True, 0.005), (False, SWITCH_INTERVAL), (True, SWITCH_INTERVAL)]


async def run(dispatchers: int, rounds: int, window: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        app = Application([command_module()], store=f"sqlite:///{Path(folder) / 'app.db'}")
        await app.start()
        store = app.store
        assert isinstance(store, SQLiteEventStore)
        writer = store.writer
        assert isinstance(writer, LoopWriter)
        done = [0]
        stopping = False

        async def dispatcher(i: int) -> None:
            while not stopping:
                await app.dispatch(Deposit(account=f"a{i % 100}", amount=1))
                done[0] += 1

        tasks = [asyncio.create_task(dispatcher(i)) for i in range(dispatchers)]
        await asyncio.sleep(1.0)  # warm-up
        rates: dict[tuple[bool, float], list[float]] = {s: [] for s in SETTINGS}
        cpu: dict[tuple[bool, float], list[float]] = {s: [] for s in SETTINGS}
        for round_ in range(rounds):
            for setting in SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]:
                writer.overlap, interval = setting
                sys.setswitchinterval(interval)
                await asyncio.sleep(0.4)  # the new setting settles in
                count, started, cpu_started = done[0], time.perf_counter(), time.process_time()
                await asyncio.sleep(window)
                elapsed = time.perf_counter() - started
                rates[setting].append((done[0] - count) / elapsed)
                cpu[setting].append((time.process_time() - cpu_started) / elapsed)
        stopping = True
        await asyncio.gather(*tasks)
        await app.stop()
    base = rates[SETTINGS[0]]
    print(f"command path, {dispatchers} dispatchers, {rounds} rounds of {window} s windows")
    print(f"{'overlap':>8} {'switch':>8} {'events/s (median)':>18} {'process CPU':>12} {'ratio to first row':>19}")
    for setting in SETTINGS:
        ratios = [r / b for r, b in zip(rates[setting], base, strict=True)]
        overlap, interval = ("on" if setting[0] else "off"), setting[1] * 1000
        print(
            f"{overlap:>8} {interval:>6.1f}ms {statistics.median(rates[setting]):>18,.0f}"
            f" {statistics.median(cpu[setting]):>12.2f} {statistics.median(ratios):>12.3f} (min {min(ratios):.3f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dispatchers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--window", type=float, default=1.5, help="seconds measured per setting and round")
    args = parser.parse_args()
    tune_gc()
    uvloop.run(run(args.dispatchers, args.rounds, args.window))


if __name__ == "__main__":
    main()
