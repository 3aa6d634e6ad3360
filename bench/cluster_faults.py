"""Faults on the scale-out rig (``bench/cluster_rig.py``), each injected while the virtual users load it through
HAProxy, and what the rig checks after each.

One rig runs every fault in turn (``bench/cluster_faults_inject.py``): ``tc netem`` delay and loss between a node
and PostgreSQL, a node's link cut, the NATS server leading the events stream killed, a node killed with
SIGKILL, PostgreSQL restarted. Each fault gets a phase of its own: ``vuload`` (the virtual users of ``make vu``)
and the ledger client (``bench/cluster_faults_ledger.py``: orders and payments with idempotency keys, retried as
a careful client retries) start; the fault begins after ``--before`` seconds, lasts its time, is healed (a
killed server started again), and the phase goes on ``--after`` seconds more. Then the consumers catch up and
the phase is audited (``bench/cluster_faults_audit.py``): acknowledged commands lost, commands or events applied
twice, how long a lease stood expired, every 5xx by status (HAProxy logs each request), and the recovery time:
from the heal until two seconds in a row answer at least 80% of the rate before the fault.

Usage (as root): ``python bench/cluster_faults.py [--nodes 3] [--connections 300] [--faults netem,link,...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from citadel.security import issue_token
from cluster_faults_audit import LeaseWatch, analytics_twice, answers, audit_ledger, recovery, statuses
from cluster_faults_inject import Fault, link_cut, nats_leader, netem, node_kill, postgres_restart
from cluster_faults_ledger import Customer, Ledger, burst, payable, run_ledger
from cluster_rig import Rig, RigOptions
from cluster_services import NODE_PORT, get_json
from machine import ensure_vuload, raise_file_limit
from vu import Load, mint_tokens, split_invoices, write_data_file

ROOT = Path(__file__).resolve().parents[1]
BURST_LEAD = 0.015
"""Seconds between the burst's requests leaving and the fault starting: they have reached the node, and their
commits are under way."""
LEDGER_CUSTOMERS = 40
"""Seeded customers kept for the ledger client (the virtual users get the others)."""

__all__ = ["FAULTS", "FaultRow", "Phases", "print_table", "run_faults"]

FAULTS = {
    "netem": Fault("100 ms + 5% loss, n1 <-> PostgreSQL, 20 s", 20, netem("n1")),
    "link": Fault("n2's link cut, 10 s", 10, link_cut("n2")),
    "nats": Fault("NATS stream leader killed, restarted after 5 s", 5, nats_leader),
    "kill": Fault("n3 killed (SIGKILL) mid-batch, restarted after 5 s", 5, node_kill("n3"), burst="n3"),
    "postgres": Fault("PostgreSQL restarted", 0, postgres_restart),
}


@dataclass
class FaultRow:
    """What one fault's phase showed."""

    fault: str
    errors: dict[str, int]
    """5xx and client give-ups (-1) HAProxy logged from the fault's start to the phase's end, by status."""
    ledger: dict[int, int]
    """Every answer the ledger client got (0: none), by status."""
    acknowledged: int
    commands: int
    cut: int
    """Orders of the burst sent straight to the node the fault kills that it left unanswered."""
    burst: int
    """Orders in that burst (0: the fault has none)."""
    gave_up: int
    rate_before: float
    lowest_rate: float
    """The fewest answers (not 5xx) of one second, from the fault's start to the phase's end."""
    recovery_seconds: float
    bound: float
    lease_expired: float
    lease: str
    lease_moves: int
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What kept a check from being made (then the row proves nothing about it)."""

    @property
    def server_errors(self) -> int:
        """500s, from HAProxy's log and the ledger's answers: never allowed."""
        return self.errors.get("500", 0) + self.ledger.get(500, 0)


@dataclass
class Phases:
    """What every phase shares: the rig, the ledger's customers and invoices, the virtual users' files."""

    rig: Rig
    connections: int
    before: float
    after: float
    customers: list[Customer]
    invoices: Iterator[tuple[Customer, str, int]]
    data_files: list[Path]
    lease_ttl: float = 5.0
    watch: LeaseWatch | None = None


def prepare(rig: Rig, connections: int, before: float, after: float, phases: int) -> Phases:
    """Split the seed: ``LEDGER_CUSTOMERS`` customers for the ledger, the others (each phase with its own share
    of their invoices) for the virtual users."""
    if rig.seed is None:
        raise RuntimeError("start the rig first")
    kept, others = rig.seed.customers[-LEDGER_CUSTOMERS:], rig.seed.customers[:-LEDGER_CUSTOMERS]
    customers = [
        Customer(
            c["user_id"],
            issue_token(rig.secret, c["user_id"], ["customer"], ttl=7200),
            tuple((invoice, amount) for _, invoice, amount in c["orders"]),
        )
        for c in kept
    ]
    seed = dataclasses.replace(rig.seed, customers=others)
    tokens = mint_tokens(seed, rig.secret, ttl=7200)
    _, invoices = split_invoices(seed, 0.0, 1.0)
    files = []
    for phase in range(phases):
        files.append(rig.folder / f"users-{phase}.txt")
        write_data_file(files[-1], seed, tokens, invoices[phase::phases])
    return Phases(rig, connections, before, after, customers, payable(customers), files)


def _virtual_users(phases: Phases, data: Path, seconds: float, log: Path) -> subprocess.Popen[str]:
    load = Load("vuload", ensure_vuload(ROOT), phases.connections, 1, 1.0, seconds, timeout=10.0)
    command = [load.generator, "-t", "1", "-c", str(load.connections), "-w", "1", "-d", f"{seconds:g}"]
    command += ["--timeout", "10", phases.rig.url, str(data), "m"]
    with log.open("w") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True, preexec_fn=load.preexec())


def _burst(phases: Phases, fault: Fault, label: str) -> asyncio.Task[tuple[Ledger, int]] | None:
    """Start the fault's burst of orders straight at its node, if it has one."""
    rig = phases.rig
    if fault.burst is None or rig.seed is None:
        return None
    node = f"http://{rig.host(fault.burst).address}:{NODE_PORT}"
    return asyncio.create_task(burst(node, rig.url, phases.customers, rig.seed.items, label))


async def _caught_up(rig: Rig, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(rig.lag) == 0:
            return True
        await asyncio.sleep(0.5)
    return False


async def run_phase(phases: Phases, number: int, fault: Fault) -> FaultRow:
    """Load the rig, inject ``fault``, heal it, let the load run on, then audit; return the phase's row."""
    rig, before, after = phases.rig, phases.before, phases.after
    longest = 1.0 + before + fault.seconds + 60 + after  # vuload stops at the phase's end, whatever comes first
    vu = _virtual_users(phases, phases.data_files[number], longest, rig.folder / f"vu-{number}.txt")
    stop = asyncio.Event()
    items = rig.seed.items if rig.seed is not None else []
    ledger_task = asyncio.create_task(run_ledger(rig.url, phases.customers, phases.invoices, items, f"f{number}", stop))
    burst_task: asyncio.Task[tuple[Ledger, int]] | None = None
    try:
        await asyncio.sleep(1.0 + before)
        print(f"fault {number + 1}: {fault.label}", flush=True)
        injected, injected_at = time.time(), time.monotonic()
        burst_task = _burst(phases, fault, f"f{number}")
        if burst_task is not None:
            await asyncio.sleep(BURST_LEAD)
        heal = await asyncio.to_thread(fault.start, rig)
        try:
            await asyncio.sleep(fault.seconds)
        finally:
            await asyncio.to_thread(heal)
        healed = time.time()
        await asyncio.sleep(after)
    finally:
        ended, ended_at = time.time(), time.monotonic()
        stop.set()
        vu.send_signal(signal.SIGKILL)
        vu.wait()
        ledger = await ledger_task  # commands under way go on to their end
    cut, sent = 0, 0
    if burst_task is not None:
        burst_ledger, cut = await burst_task
        sent = len(burst_ledger.entries)
        ledger.entries += burst_ledger.entries
        ledger.gave_up += burst_ledger.gave_up
    problems = []
    lost, duplicated = await audit_ledger(rig.store_url, ledger)
    if not await _caught_up(rig):
        problems.append(f"the consumers were still behind 60 s after the phase (lag {rig.lag()})")
    else:
        problems += await _analytics(rig, duplicated)
    seen = answers(rig.process("haproxy").log)
    rate, lowest, recovered = recovery(seen, (injected - before + 2, injected), (injected, healed), ended - healed - 1)
    watch = phases.watch or LeaseWatch("")
    expired, lease = watch.longest_expired(injected_at, ended_at)
    return FaultRow(
        fault=fault.label,
        errors=dict(statuses(seen, injected, ended)),
        ledger=dict(ledger.statuses()),
        acknowledged=len(ledger.acknowledged()),
        commands=len(ledger.entries),
        cut=cut,
        burst=sent,
        gave_up=ledger.gave_up,
        rate_before=rate,
        lowest_rate=lowest,
        recovery_seconds=recovered,
        bound=ended - healed - 1,
        lease_expired=expired,
        lease=lease,
        lease_moves=watch.moves(injected_at, ended_at),
        lost=lost,
        duplicated=duplicated,
        problems=problems,
    )


async def _analytics(rig: Rig, duplicated: list[str]) -> list[str]:
    """Add to ``duplicated`` what the analytics counted twice; return why the check could not be made, if so
    (it asks again while a late command's events are still on their way to the projection)."""
    for _ in range(10):
        status, counts = await asyncio.to_thread(get_json, f"{rig.url}/analytics/orders-by-status", rig.admin_token)
        if status != 200:
            return [f"the analytics answered {status} {counts}"]
        twice, behind = await analytics_twice(rig.store_url, {k: int(str(v)) for k, v in counts.items()})
        if twice or not behind:
            duplicated += twice
            return []
        await asyncio.sleep(1.0)
    return ["the analytics stayed behind the log for 10 s after the consumers caught up"]


async def run_faults(
    rig: Rig, faults: Sequence[Fault], connections: int, before: float, after: float
) -> list[FaultRow]:
    """Run each fault's phase on ``rig``, the lease watch throughout; return the rows."""
    phases = prepare(rig, connections, before, after, len(faults))
    phases.watch = LeaseWatch(rig.store_url)
    stop = asyncio.Event()
    watching = asyncio.create_task(phases.watch.run(stop))
    try:
        return [await run_phase(phases, number, fault) for number, fault in enumerate(faults)]
    finally:
        stop.set()
        await watching


def _errors(row: FaultRow) -> str:
    found = Counter(row.errors)
    return ", ".join(f"{status} x{n}" for status, n in sorted(found.items())) or "none"


def _cut(row: FaultRow) -> str:
    return f"; {row.cut} of {row.burst} orders sent straight to the node cut by the kill" if row.burst else ""


def print_table(rows: Sequence[FaultRow], lease_ttl: float = 5.0) -> str:
    """Print the faults' table (Markdown) and the evidence of anything lost or duplicated; return it."""
    lines = [
        "| fault | errors seen by status (HAProxy) | ledger: acknowledged / sent, gave up, retried answers "
        "| recovery to 80% after the heal | lease expired at most | lost | duplicated |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        retried = ", ".join(f"{s or 'no answer'} x{n}" for s, n in sorted(row.ledger.items()) if not 200 <= s < 300)
        recovered = f"{row.recovery_seconds:.0f} s" if math.isfinite(row.recovery_seconds) else f"> {row.bound:.0f} s"
        lines.append(
            f"| {row.fault} | {_errors(row)} | {row.acknowledged} / {row.commands}, {row.gave_up}, "
            f"{retried or 'none'}{_cut(row)} | {recovered} ({row.rate_before:.0f}/s before, {row.lowest_rate:.0f}/s "
            "at the lowest) "
            f"| {row.lease_expired:.1f} s (TTL {lease_ttl:g} s, {row.lease_moves} moves) "
            f"| {len(row.lost)} | {len(row.duplicated)} |"
        )
    for row in rows:
        for what, items in (("lost", row.lost), ("duplicated", row.duplicated), ("not checked", row.problems)):
            for item in items[:10]:
                lines.append(f"\n{row.fault}: {what}: {item}")
    table = "\n".join(lines)
    print(table, flush=True)
    return table


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the rig's cleanup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3, help="Citadel nodes behind HAProxy")
    parser.add_argument("--connections", type=int, default=300, help="virtual users (each ~1 request/s)")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"which, in order: {', '.join(FAULTS)}")
    parser.add_argument("--before", type=float, default=6.0, help="seconds of load before each fault")
    parser.add_argument("--after", type=float, default=20.0, help="seconds of load after each heal")
    parser.add_argument("--logs", type=Path, help="copy every server's log here before the rig is removed")
    args = parser.parse_args()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupted)
    raise_file_limit(needed=4096)
    faults = [FAULTS[name] for name in args.faults.split(",")]
    with Rig(RigOptions(nodes=args.nodes, haproxy_log=True)) as rig:
        print(f"rig {rig.id}: subnet {rig.net.subnet}, HAProxy at {rig.url}, files in {rig.folder}", flush=True)
        try:
            rows = asyncio.run(run_faults(rig, faults, args.connections, args.before, args.after))
        finally:
            if args.logs is not None:  # the evidence outlives the rig's folder
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in rig.folder.glob("*.log"):
                    shutil.copy(log, args.logs / log.name)
    print(f"\n{args.connections} virtual users and the ledger client through HAProxy, {args.nodes} nodes\n")
    print_table(rows)


if __name__ == "__main__":
    main()
