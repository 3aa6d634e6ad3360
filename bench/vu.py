"""The shop under 10,000 concurrent virtual users on this one machine, side by side with a baseline.

Each scenario serves a fresh copy of a seeded shop with ``citadel serve`` and drives it with a load generator in
C: every connection is a virtual user that thinks 0.5-1.5 s between requests (so about 10,000 requests/s are
offered), 70% queries and 30% commands about its own orders, invoices and access. The warm-up comes first, then
the measured window on the same connections (the steady state: the 10,000 connections are opened during the
warm-up); meanwhile the resident memory of the server's processes is sampled every 0.5 s, and the store's head
is read when the measured window begins and ends.

Load generators (``--driver``), the same virtual users and the same data file:

* ``vuload`` (the default): ``bench/vu/vuload.c``, compiled here on first use; think times in a timing wheel,
  so a request costs it little more than its system calls; one run, warm-up then measured window;
* ``wrk`` with ``bench/vu/shop.lua`` (Debian's package, installed when missing): wrk walks a list of every
  pending timer on each turn of its loop, so with 10,000 virtual users thinking it takes about 0.1 ms of CPU
  per request, over half of this machine at the offered load: CPU the server does not get. A warm-up run, then
  a measured run on new connections.

The generator runs as ``SCHED_BATCH`` (``--policy batch``, the default): on this 2-core machine each answer the
server writes wakes the generator, and under the default policy that wake-up preempted the server in the middle
of its write (its time then went to the generator's scheduling, not to serving). As a batch task the generator
runs when the server yields a core. Its latencies can only grow by that (a response read later), never shrink.
Measured side by side (10 + 25 s runs, same build): 7,820 / 7,583 requests/s at 279 / 316 ms average with
``--policy normal``, 8,752 / 8,587 at 139 / 157 ms with ``batch``; the generator's own CPU went from 0.23 to
0.13 cores.

Scenarios:

* ``baseline``: the common way: group commit off (``?group_commit=0``: one transaction per command), granian
  (a popular ASGI server) with one worker;
* ``citadel``: the defaults (group commit on, Citadel's own HTTP server), with ``--workers`` worker processes
  (several: one column each); ``--server granian`` serves it with granian instead, ``--server citadel,granian``
  with each (one column each); the async projections and process managers run in the workers and, in a column
  of its own, in a process of their own (``--consumers workers,process``). The report says how far the slowest
  of them is behind when the measured window ends: a node that answers fast by leaving its process managers
  behind has not done its work.

The seed (10,000 customers, 100,000 orders with open invoices, 20 items) is made once in process and cached in
``var/bench/``. Output: the table in the seed's shape, ``bench/results/vu.json`` and ``bench/results/vu.png``.

Usage: ``python bench/vu.py [--connections 10000] [--warmup 30] [--duration 60] [--workers 2] [--profile]``;
quick check: ``--connections 1000 --warmup 5 --duration 10``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the server and the seed import `examples`

from machine import (  # noqa: E402
    cpu_seconds,
    ensure_vuload,
    ensure_wrk,
    process_tree,
    raise_file_limit,
    rss_kb,
    tree_cpu_seconds,
)
from vu_drivers import Load, run_vuload, run_wrk  # noqa: E402
from vu_report import chart, print_profile, print_table, summarize_profile  # noqa: E402
from vu_seed import Seed, SeedParameters, copy_store, load_or_seed, remove_copy  # noqa: E402
from vu_server import RssSampler, busiest_worker, profile, start_server, stop_server  # noqa: E402
from vu_store import events_between, slowest_checkpoint, store_head  # noqa: E402
from vu_users import mint_tokens, split_invoices, write_data_file  # noqa: E402

# The cluster benchmarks import these from here.
__all__ = ["Load", "mint_tokens", "split_invoices", "write_data_file"]

RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / "var" / "bench" / "runs"
KEEP_RUNS = 5

Result = dict[str, Any]


def profile_file(slug: str) -> Path:
    """Where py-spy writes the profile of one scenario's worker."""
    return RESULTS / f"vu-profile-{slug}.txt"


@dataclass(frozen=True)
class Scenario:
    label: str
    workers: int
    group_commit: bool
    server: str
    consumers: str = "workers"


def settle_disk() -> float:
    """Write out what the page cache holds for the disk (the previous scenario's files, deleted or not, and this
    one's fresh copy: hundreds of MB) before the server starts, so that no scenario's commits wait behind the
    writeback of another's; return the seconds it took."""
    started = time.monotonic()
    os.sync()
    return time.monotonic() - started


def run_scenario(scenario: Scenario, seed: Seed, load: Load, files: dict[str, Path], args: Any) -> Result:
    """Serve a fresh copy of the seed, warm it up, measure it; return the scenario's results."""
    folder = files["folder"]
    slug = scenario.label.split()[0].lower() + f"-{scenario.workers}w-{scenario.server}-{scenario.consumers}"
    store_url = copy_store(seed, folder, slug)
    served_url = store_url if scenario.group_commit else f"{store_url}?group_commit=0"
    print(f"\n== {scenario.label}: {served_url}, {scenario.server}, {scenario.workers} worker(s)", flush=True)
    print(f"  disk settled in {settle_disk():.1f} s", flush=True)
    secret = files["secret"].read_text()
    server = start_server(
        served_url,
        scenario.workers,
        scenario.server,
        secret,
        seed,
        folder / f"{slug}.log",
        args.backpressure,
        scenario.consumers,
    )
    sampler = RssSampler(server.process.pid)
    sampler.start()
    marks: dict[str, Any] = {}

    def measuring() -> None:  # the measured window begins
        marks["head_before"] = store_head(store_url)
        if args.profile and scenario.group_commit:
            worker = busiest_worker(server.process.pid)
            seconds = min(args.profile_seconds, load.duration)
            marks["spy"] = profile(worker, seconds, profile_file(slug), args.profile_gil)
        print(f"  measured: {load.duration:g} s", flush=True)
        marks["cpu_by_process"] = {pid: cpu_seconds(pid) for pid in process_tree(server.process.pid)}
        marks["cpu_before"] = sum(marks["cpu_by_process"].values())

    try:
        idle_kb = sum(rss_kb(pid) for pid in process_tree(server.process.pid))
        print(f"  warm-up: {load.warmup:g} s, {load.connections:,} connections", flush=True)
        warm = None
        if load.driver == "vuload":  # one run: the warm-up, then the measured window on the same connections
            measured = run_vuload(load, server.url, files["all"], folder / f"{slug}-run.txt", measuring)
        else:  # wrk: a warm-up run, then a measured run on new connections
            if load.warmup > 0:
                warm = run_wrk(load, server.url, load.warmup, files["warmup"], "w", folder / f"{slug}-warmup.txt")
            measuring()
            measured = run_wrk(load, server.url, load.duration, files["measure"], "m", folder / f"{slug}-measure.txt")
        server_cpu = tree_cpu_seconds(server.process.pid) - marks["cpu_before"]
        cpu_by_process = sorted(
            (cpu_seconds(pid) - before for pid, before in marks["cpu_by_process"].items()), reverse=True
        )
        head_before = marks["head_before"]
        head_after = store_head(store_url)
        behind = events_between(store_url, slowest_checkpoint(store_url), head_after)
        written = events_between(store_url, head_before, head_after)
    finally:
        rss = sampler.stop()
        stop_server(server)
        spy = marks.get("spy")
        if spy is not None:
            spy.wait()
            profiled = profile_file(slug)
            if profiled.exists():
                shutil.copyfile(profiled, RESULTS / "vu-profile.txt")  # the last Citadel scenario's, by name
    seconds = measured["duration_us"] / 1e6
    ok_commands = sum(measured["ops"].get(op, 0) for op in ("register", "create", "pay"))
    non_2xx = sum(v for k, v in measured["statuses"].items() if k != "2xx")
    result: Result = {
        "label": scenario.label,
        "store": served_url,
        "workers": scenario.workers,
        "group_commit": scenario.group_commit,
        "server": scenario.server,
        "consumers": scenario.consumers,
        "backpressure": args.backpressure or None,
        "warmup": warm,
        "measured": measured,
        "server_cpu_seconds": round(server_cpu, 2),
        "server_cpu_seconds_by_process": [round(cpu, 2) for cpu in cpu_by_process],
        "rss": rss | {"idle_kb": idle_kb},
        "events": {
            "head_before": head_before,
            "head_after": head_after,
            "written": written,
            "consumers_behind": behind,
            "per_second": written / seconds,
        },
        # commands sent minus every non-2xx answer: a lower bound of the commands that succeeded
        "commands_ok_per_second": max(0, ok_commands - non_2xx) / seconds,
        "offered_per_second": load.connections / 1.0,  # each virtual user: one request per ~1 s of think time
        "server_log_tail": server.tail(1500),
    }
    if spy is not None and profile_file(slug).exists():
        result["profile"] = summarize_profile(profile_file(slug))
    if not args.keep:
        remove_copy(store_url)
    return result


def prepare_files(seed: Seed, load: Load) -> dict[str, Path]:
    """The run folder: the token secret and the data files (wrk's warm-up and measured runs take apart invoices;
    vuload's one run takes both)."""
    folder = RUNS / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(RUNS.iterdir())[:-KEEP_RUNS]:  # the data files are ~5 MB each: keep the last few runs
        shutil.rmtree(old, ignore_errors=True)
    secret = folder / "secret"
    secret.write_text(secrets.token_urlsafe(48))
    started = time.perf_counter()
    tokens = mint_tokens(seed, secret.read_text(), ttl=4 * 3600)
    warm, measure = split_invoices(seed, load.warmup, load.duration)
    files = {"folder": folder, "secret": secret, "warmup": folder / "warmup.txt", "measure": folder / "measure.txt"}
    files["all"] = folder / "all.txt"  # vuload's single run: warm-up and measured invoices, each paid once
    write_data_file(files["warmup"], seed, tokens, warm)
    write_data_file(files["measure"], seed, tokens, measure)
    write_data_file(files["all"], seed, tokens, warm + measure)
    print(
        f"{len(tokens):,} tokens minted, {len(warm):,} + {len(measure):,} payable invoices "
        f"({time.perf_counter() - started:.1f} s); run files in {folder}",
        flush=True,
    )
    return files


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000, help="virtual users")
    parser.add_argument("--threads", type=int, default=2, help="the load generator's threads")
    parser.add_argument("--driver", choices=["vuload", "wrk"], default="vuload", help="the load generator")
    parser.add_argument(
        "--policy",
        choices=["batch", "normal"],
        default="batch",
        help="the load generator's scheduling policy: batch (SCHED_BATCH: its wake-ups do not preempt the server"
        " mid-write) or normal",
    )
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of warm-up before measuring")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="requests older than this count as timeouts (vuload: once each, its answer still in the latency "
        "histogram; wrk: left out of it, counted once per connection every 2 s while older than this)",
    )
    parser.add_argument("--workers", default="2", help="Citadel's worker processes; several: 1,2")
    parser.add_argument("--scenarios", default="baseline,citadel", help="which to run: baseline, citadel")
    parser.add_argument(
        "--server", default="citadel", help="the Citadel scenario's server: citadel, granian, or both (citadel,granian)"
    )
    parser.add_argument(
        "--consumers",
        default="workers,process",
        help="where the Citadel scenario runs projections and process managers: workers, process, or both",
    )
    parser.add_argument("--store", default="sqlite", help="sqlite, or a PostgreSQL URL (a database per run)")
    parser.add_argument("--users", type=int, default=10_000, help="seeded customers")
    parser.add_argument("--orders", type=int, default=100_000, help="seeded orders with open invoices")
    parser.add_argument("--items", type=int, default=20, help="seeded content items")
    parser.add_argument(
        "--backpressure",
        type=int,
        default=12_000,
        help="connections each server worker serves (CITADEL_MAX_CONNECTIONS; 0: Citadel's default)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy a Citadel worker during the measured run")
    parser.add_argument(
        "--profile-gil", action="store_true", help="profile only the thread holding the GIL (py-spy --gil)"
    )
    parser.add_argument("--profile-seconds", type=float, default=20.0, help="how long py-spy records")
    parser.add_argument("--keep", action="store_true", help="keep the run's database copies")
    parser.add_argument("--json", type=Path, default=RESULTS / "vu.json", help="where to write the raw results")
    parser.add_argument("--chart", type=Path, default=RESULTS / "vu.png", help="where to draw the chart")
    return parser.parse_args()


def scenarios_of(args: argparse.Namespace) -> list[Scenario]:
    wanted = set(args.scenarios.split(","))
    found = [Scenario("baseline (granian, group commit off)", 1, False, "granian")] if "baseline" in wanted else []
    if "citadel" in wanted:
        for server in args.server.split(","):
            for consumers in args.consumers.split(","):
                suffix = "" if server == "citadel" else f", {server}"
                suffix += " + consumers' process" if consumers == "process" else ""
                found += [
                    Scenario(f"Citadel ({w} worker{'s' if w != '1' else ''}{suffix})", int(w), True, server, consumers)
                    for w in args.workers.split(",")
                ]
    return found


def main() -> None:
    args = parse_args()
    os.chdir(ROOT)
    limit = raise_file_limit()
    generator = ensure_wrk() if args.driver == "wrk" else ensure_vuload(ROOT)
    load = Load(
        args.driver, generator, args.connections, args.threads, args.warmup, args.duration, args.timeout, args.policy
    )
    machine = f"Python {platform.python_version()}, {os.cpu_count()} CPUs, open-file limit {limit:,}"
    print(f"{machine}, load generator {generator}", flush=True)
    seed = load_or_seed(SeedParameters(args.users, args.orders, args.items), args.store)
    files = prepare_files(seed, load)
    results = [run_scenario(s, seed, load, files, args) for s in scenarios_of(args)]
    print(
        f"\n{load.connections:,} virtual users (think time 0.5-1.5 s), {load.warmup:g} s warm-up, "
        f"{load.duration:g} s measured, {args.store} store\n"
    )
    table = print_table(results)
    report: Result = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load": dataclasses.asdict(load),
        "seed": {
            "parameters": vars(SeedParameters(args.users, args.orders, args.items)),
            "cached": seed.cached,
            "seconds": round(seed.seconds, 1),
        },
        "table": table,
        "scenarios": results,
    }
    for result in results:
        if "profile" in result:
            print(f"\n{result['label']}:", end="")
            print_profile(result["profile"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    chart(results, args.chart)
    print(f"\nraw results: {args.json}; chart: {args.chart}")


if __name__ == "__main__":
    main()
