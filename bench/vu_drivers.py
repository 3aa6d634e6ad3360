"""The load generators of the virtual-user benchmark (imported by ``bench/vu.py``): how they drive the server
(``Load``), and a run of vuload or wrk read back from its ``VU-RESULT`` line."""

from __future__ import annotations

import json
import os
import resource
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine import cpu_seconds

__all__ = ["Load", "run_vuload", "run_wrk"]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "vu" / "shop.lua"

Result = dict[str, Any]


@dataclass(frozen=True)
class Load:
    """How the load generator drives the server."""

    driver: str
    generator: str
    connections: int
    threads: int
    warmup: float
    duration: float
    timeout: float
    policy: str = "batch"
    """The generator's scheduling policy: ``batch`` (SCHED_BATCH) or ``normal``."""

    def preexec(self) -> Callable[[], None] | None:
        """What the generator's child runs before it starts: its scheduling policy."""
        if self.policy != "batch":
            return None
        return lambda: os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def _reported(driver: str, command: list[str], lines: list[str], errors: str, cpu: float, log: Path) -> Result:
    """What a load generator's ``VU-RESULT`` line reported, with the generator's CPU seconds; the run's output
    goes to ``log``.

    Raises:
        SystemExit: it reported nothing (with its output).
    """
    log.write_text(f"$ {' '.join(command)}\n" + "\n".join(lines) + f"\n{errors}")
    for line in lines:
        if line.startswith("VU-RESULT "):
            result: Result = json.loads(line.removeprefix("VU-RESULT "))
            result["generator_cpu_seconds"] = round(cpu, 2)
            result["generator_summary"] = [ln for ln in lines if not ln.startswith("VU-RESULT")]
            return result
    raise SystemExit(f"{driver} reported nothing:\n" + "\n".join(lines) + f"\n{errors}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(load: Load, url: str, seconds: float, data: Path, phase: str, log: Path) -> Result:
    """Run wrk with ``shop.lua`` for ``seconds`` on new connections; return what the script's done() reported.

    Raises:
        SystemExit: it failed or reported nothing (with its output).
    """
    command = [load.generator, "-t", str(load.threads), "-c", str(load.connections), "-d", f"{seconds:g}s"]
    command += ["--timeout", f"{load.timeout:g}s", "-s", str(SCRIPT), url, "--", str(data), phase, str(load.threads)]
    before = _children_cpu()
    finished = subprocess.run(command, capture_output=True, text=True, check=False, preexec_fn=load.preexec())
    return _reported("wrk", command, finished.stdout.splitlines(), finished.stderr, _children_cpu() - before, log)


def run_vuload(load: Load, url: str, data: Path, log: Path, on_measuring: Callable[[], None]) -> Result:
    """Run vuload once: ``load.warmup`` seconds of warm-up, then (after ``on_measuring()``) ``load.duration``
    seconds measured on the same connections; return what it reported about the measured window.

    Raises:
        SystemExit: it failed or reported nothing (with its output).
    """
    command = [load.generator, "-t", str(load.threads), "-c", str(load.connections), "-w", f"{load.warmup:g}"]
    command += ["-d", f"{load.duration:g}", "--timeout", f"{load.timeout:g}", url, str(data), "m"]
    before = _children_cpu()
    lines, warmup_cpu = [], 0.0
    # As a context manager the Popen closes both pipes and waits for vuload on the way out, error or not.
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=load.preexec()
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == "MEASURING":
                warmup_cpu = cpu_seconds(process.pid)
                on_measuring()
        errors = process.stderr.read()
    return _reported("vuload", command, lines, errors, _children_cpu() - before - warmup_cpu, log)
