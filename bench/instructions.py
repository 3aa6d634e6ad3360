"""CPU instructions per command on the SQLite command path, counted by valgrind: a measure that does not move
with the machine's speed, for comparing builds when wall-clock rows drift by ±20% from one minute to the next.

Each source tree runs ``bench/store.py``'s command path (decide, append, inline projection; 1,000 dispatchers)
twice under ``valgrind --tool=callgrind``, for a few and for many commands; the difference of the two counts
divided by the difference of commands is the cost of one command, without start-up and shutdown. Threads are
counted too (the checkpointer), waiting is not.

Usage: ``python bench/instructions.py [--commands 20000] [--src DIR ...]`` (default: this checkout's ``src``).
Needs valgrind (Debian package ``valgrind``); about two minutes per source tree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = 2_000


async def _run_commands(count: int, dispatchers: int = 1000) -> None:
    sys.path.insert(0, str(HERE))
    from citadel import Application
    from store import Deposit, command_module

    with tempfile.TemporaryDirectory() as folder:
        app = Application([command_module()], store=f"sqlite:///{Path(folder) / 'app.db'}")
        await app.start()
        try:

            async def loop(w: int) -> None:
                for _ in range(count // dispatchers):
                    await app.dispatch(Deposit(account=f"a{w % 100}", amount=1))

            await asyncio.gather(*(loop(w) for w in range(dispatchers)))
        finally:
            await app.stop()


def _count(src: Path, commands: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--child", str(commands)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the run under valgrind failed ({src}):\n{out.stderr[-3000:]}")
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no count:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=20_000, help="commands counted (beyond the base run's)")
    parser.add_argument("--src", type=Path, action="append", help="a source tree holding the citadel package")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        import uvloop

        from citadel import tuning

        tuning.tune_gc()
        if hasattr(tuning, "tune_switch_interval"):  # older trees, compared with --src, lack it
            tuning.tune_switch_interval()
        uvloop.run(_run_commands(args.child))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: `apt-get install valgrind`, then run this again")
    sources = args.src or [HERE.parent / "src"]
    print(f"{'source tree':50s} {'instructions per command':>26s}")
    for src in sources:
        few, many = _count(src, BASE), _count(src, BASE + args.commands)
        print(f"{src!s:50s} {(many - few) / args.commands:>26,.0f}")


if __name__ == "__main__":
    main()
