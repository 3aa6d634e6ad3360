"""The scale-out rig: N Citadel nodes on PostgreSQL and a NATS cluster, behind HAProxy, each in a network
namespace of its own on this one machine, under the shop's virtual users.

It starts (``bench/cluster_rig.py``), on a Linux bridge with a private /24:

* PostgreSQL, a cluster made with ``initdb`` for this run, in its own namespace;
* three ``nats-server`` processes clustered with JetStream, each in its own namespace; once the nodes have
  created their events stream, it is given three replicas (``Rig.replicate_stream`` says why);
* N nodes (``--nodes``, 3 by default), each ``citadel serve examples.shop:app`` in its own namespace, all on the
  one database, each with a different NATS server as its seed;
* HAProxy on the root namespace's loopback, round robin over the nodes, each checked on ``/ready`` every second.

The store is seeded first (``bench/vu_seed.py``, small by default), then the load generator of ``make vu``
(``bench/vu/vuload.c``) drives HAProxy with the shop's virtual users: a warm-up, then a measured window. The
table gives the requests per second, latency, errors, the consumers' lag when the window ends and how long
they took to catch up, and per node: its answers (HAProxy's count), its 5xx, and its CPU per answer (from
/proc/<pid>/stat of the node's process tree). Everything is removed when the run ends, fails or is interrupted.

Usage (as root): ``python bench/cluster.py [--nodes 3] [--connections 600] [--warmup 5] [--duration 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_rig import Rig, RigOptions
from cluster_services import haproxy_stats
from machine import ensure_vuload, raise_file_limit, tree_cpu_seconds
from vu import Load, mint_tokens, split_invoices, write_data_file

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ClusterRun", "NodeRow", "drive", "measure", "print_table", "run"]


@dataclass
class NodeRow:
    """One node's share of the measured window."""

    name: str
    answers: int
    status_5xx: int
    cpu_seconds: float

    @property
    def cpu_ms_per_answer(self) -> float:
        return 1000 * self.cpu_seconds / self.answers if self.answers else 0.0


@dataclass
class ClusterRun:
    """What one run of the rig measured."""

    nodes: int
    connections: int
    seconds: float
    requests: int
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    errors: dict[str, int]
    lag_at_end: int
    catch_up_seconds: float | None
    """Seconds from the window's end until every consumer's lag was 0 (None: not within the bound)."""
    replicas: int
    per_node: list[NodeRow] = field(default_factory=list)
    servers_cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds of each other server (PostgreSQL, NATS, HAProxy) in the window."""

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        """Answers with a 5xx status and requests that got no answer (connect, read, write errors, timeouts)."""
        transport = sum(v for k, v in self.errors.items() if k != "status")
        return self.statuses.get("5xx", 0) + transport


def _answers(row: dict[str, str]) -> tuple[int, int]:
    """A backend server's answers so far, and its 5xx among them (HAProxy's counters)."""
    counts = [int(row.get(f"hrsp_{k}xx") or 0) for k in range(1, 6)]
    return sum(counts) + int(row.get("hrsp_other") or 0), counts[4]


def drive(load: Load, url: str, data: Path, log: Path, on_measuring: Callable[[], None]) -> dict[str, Any]:
    """Run vuload (``make vu``'s load generator) against ``url``: ``load.warmup`` seconds, then (after
    ``on_measuring()``) ``load.duration`` seconds measured; return its report of the measured window.

    Raises:
        SystemExit: it reported nothing (with its output, also kept in ``log``).
    """
    command = [load.generator, "-t", str(load.threads), "-c", str(load.connections), "-w", f"{load.warmup:g}"]
    command += ["-d", f"{load.duration:g}", "--timeout", f"{load.timeout:g}", url, str(data), "m"]
    lines = []
    with (
        log.with_suffix(".err").open("w") as errors,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, preexec_fn=load.preexec()) as vu,
    ):
        try:
            for line in vu.stdout or ():
                lines.append(line.rstrip("\n"))
                if line.strip() == "MEASURING":
                    on_measuring()
        except BaseException:
            vu.kill()  # interrupted: the load stops with the rig
            raise
    log.write_text(f"$ {' '.join(command)}\n" + "\n".join(lines) + "\n" + log.with_suffix(".err").read_text())
    for line in lines:
        if line.startswith("VU-RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("VU-RESULT "))
            return result
    raise SystemExit(f"vuload exited with {vu.returncode} and reported nothing:\n{log.read_text()[-3000:]}")


def measure(rig: Rig, connections: int, warmup: float, duration: float, catch_up: float = 60.0) -> ClusterRun:
    """Drive the rig's HAProxy with ``connections`` virtual users for ``warmup`` + ``duration`` seconds, then
    wait up to ``catch_up`` seconds for the consumers; return what the measured window saw.

    Raises:
        SystemExit: the load generator failed (with its output).
    """
    if rig.seed is None:
        raise RuntimeError("start the rig before measuring")
    data = rig.folder / "users.txt"
    warm, measured = split_invoices(rig.seed, warmup, duration)
    write_data_file(data, rig.seed, mint_tokens(rig.seed, rig.secret, ttl=3600), warm + measured)
    load = Load("vuload", ensure_vuload(ROOT), connections, 1, warmup, duration, timeout=10.0)
    marks: dict[str, Any] = {}

    def measuring() -> None:
        marks["stats"] = haproxy_stats(rig.stats_socket)
        marks["cpu"] = {name: tree_cpu_seconds(p.pid) for name, p in rig.processes.items()}

    report = drive(load, rig.url, data, rig.folder / "load.txt", measuring)
    if "stats" not in marks:
        raise SystemExit("vuload reported without beginning its measured window (no MEASURING line)")
    stats = haproxy_stats(rig.stats_socket)
    cpu = {name: tree_cpu_seconds(p.pid) - marks["cpu"][name] for name, p in rig.processes.items()}
    rows = []
    for node in rig.nodes:
        answers, failed = _answers(stats[node.name])
        before, failed_before = _answers(marks["stats"][node.name])
        rows.append(NodeRow(node.name, answers - before, failed - failed_before, cpu.pop(node.name)))
    lag_at_end = rig.lag()
    started, caught_up = time.monotonic(), None
    while time.monotonic() - started < catch_up:
        if rig.lag() == 0:
            caught_up = time.monotonic() - started
            break
        time.sleep(0.5)
    replicas, _ = asyncio.run(rig.stream_replicas())
    latency = report["latency_us"]
    return ClusterRun(
        nodes=len(rig.nodes),
        connections=connections,
        seconds=report["duration_us"] / 1e6,
        requests=report["requests"],
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        statuses=report["statuses"],
        errors=report["errors"],
        lag_at_end=lag_at_end,
        catch_up_seconds=caught_up,
        replicas=replicas,
        per_node=rows,
        servers_cpu=cpu,
    )


def print_table(result: ClusterRun) -> str:
    """Print the run's table (Markdown) and return it."""
    caught = f"{result.catch_up_seconds:.1f} s" if result.catch_up_seconds is not None else "not caught up"
    per_node = ", ".join(f"{n.name} {n.cpu_ms_per_answer:.2f}" for n in result.per_node)
    lines = [
        "| nodes | requests/s | p50 | p99 | 4xx | errors (5xx, no answer) | consumers' lag at end | caught up in "
        "| CPU ms per answer, per node |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {result.nodes} | {result.requests_per_second:,.0f} | {result.p50_ms:.1f} ms | {result.p99_ms:.1f} ms "
        f"| {result.statuses.get('4xx', 0)} | {result.failed} | {result.lag_at_end:,} events | {caught} | {per_node} |",
        "",
        "| node | answers | share | 5xx | CPU s | CPU ms per answer |",
        "|---|---|---|---|---|---|",
    ]
    total = sum(n.answers for n in result.per_node) or 1
    for n in result.per_node:
        lines.append(
            f"| {n.name} | {n.answers:,} | {100 * n.answers / total:.0f}% | {n.status_5xx} | {n.cpu_seconds:.1f} "
            f"| {n.cpu_ms_per_answer:.2f} |"
        )
    others = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.servers_cpu.items())
    lines += ["", f"CPU seconds of the other servers in the window: {others}."]
    table = "\n".join(lines)
    print(table, flush=True)
    return table


def run(options: RigOptions, connections: int, warmup: float, duration: float) -> ClusterRun:
    """Start the rig, measure it, take it down; return the measurements."""
    with Rig(options) as rig:
        print(f"rig {rig.id}: subnet {rig.net.subnet}, HAProxy at {rig.url}, files in {rig.folder}", flush=True)
        return measure(rig, connections, warmup, duration)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the rig's cleanup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3, help="Citadel nodes behind HAProxy")
    parser.add_argument("--connections", type=int, default=600, help="virtual users (each ~1 request/s)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the measured window")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--users", type=int, default=500, help="seeded customers")
    parser.add_argument("--orders", type=int, default=2000, help="seeded orders with open invoices")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a background job inherits it ignored
        signal.signal(signum, _interrupted)
    raise_file_limit(needed=4096)
    options = RigOptions(nodes=args.nodes, users=args.users, orders=args.orders)
    result = run(options, args.connections, args.warmup, args.duration)
    print(
        f"\n{args.connections:,} virtual users through HAProxy, {args.warmup:g} s warm-up, {result.seconds:.0f} s "
        f"measured; PostgreSQL, NATS x3 (events stream: {result.replicas} replicas), {os.cpu_count()} CPUs\n"
    )
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
