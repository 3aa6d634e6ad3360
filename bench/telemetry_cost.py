"""What telemetry costs the server: CPU per answer under the shop's virtual users, with it off and on.

The load is ``bench/vu.py``'s (the same seed, data file and load generator, vuload; each connection a virtual user
thinking 0.5-1.5 s between requests); the server is ``citadel serve`` with 2 workers, the projections and
process managers in them. Three configurations of one build:

* ``A``: no telemetry: ``metrics``, ``tracing`` and ``log_requests`` off;
* ``B``: metrics on and tracing configured but not exported: ``tracing=otlp`` with ``OTEL_TRACES_SAMPLER=always_off``
  (the SDK's ``TracerProvider`` takes its default sampler from that variable: every span is created, none is
  recorded or exported) and the OTLP endpoint a closed local port; no request log lines;
* ``C``: B with one JSON log line per request; the server's output goes to a file, as in every run;
* ``M`` and ``T``, to tell B's parts apart: metrics alone, and tracing alone (as in B).

Each round runs A, B, C in that order, each on a fresh copy of the seed; the machine's speed drifts from hour
to hour, so only the ratios of one round compare. CPU per answer is the CPU time of every server process in the
measured window over the answers received in it. The server runs from a snapshot of one commit (``git archive``
into ``var/bench/telemetry-build/``), so that edits to the tree while the rounds run change nothing.

``--profile B`` adds one run of that configuration under py-spy (kept out of the table: sampling pauses the
worker) and prints the share of samples in telemetry code. The project's environment runs it, since it holds the
``otel`` extra; py-spy comes from ``.venv-bench`` when this one lacks it.

Usage: ``python bench/telemetry_cost.py [--connections 10000] [--warmup 20] [--duration 40] [--rounds 3]
[--profile B]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine import ensure_vuload, free_port, raise_file_limit, tree_cpu_seconds
from telemetry_report import print_profile, print_table, summarize_telemetry
from vu import prepare_files, settle_disk
from vu_drivers import Load, run_vuload
from vu_seed import Seed, SeedParameters, copy_store, load_or_seed, remove_copy
from vu_server import CITADEL, Server, busiest_worker, stop_server, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
BUILDS = ROOT / "var" / "bench" / "telemetry-build"
OUTPUT = ROOT / "var" / "bench" / "telemetry-cost.json"

Result = dict[str, Any]


@dataclass(frozen=True)
class Configuration:
    key: str
    label: str
    env: dict[str, str] = field(default_factory=dict)


def configurations(closed_port: int) -> dict[str, Configuration]:
    """The three configurations; ``closed_port``: a local port nothing listens on, the OTLP endpoint."""
    off = {"CITADEL_METRICS": "false", "CITADEL_TRACING": "off", "CITADEL_LOG_REQUESTS": "false"}
    traced = {
        "CITADEL_METRICS": "true",
        "CITADEL_TRACING": "otlp",
        "OTEL_TRACES_SAMPLER": "always_off",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port}",
        "CITADEL_LOG_REQUESTS": "false",
    }
    logged = traced | {"CITADEL_LOG_REQUESTS": "true", "CITADEL_LOG_FORMAT": "json"}
    return {
        "A": Configuration("A", "no telemetry", off),
        "B": Configuration("B", "metrics + tracing, not exported", traced),
        "C": Configuration("C", "B + request log lines (JSON, to a file)", logged),
        "M": Configuration("M", "metrics alone", off | {"CITADEL_METRICS": "true"}),
        "T": Configuration("T", "tracing alone, not exported", traced | {"CITADEL_METRICS": "false"}),
    }


@dataclass(frozen=True)
class Build:
    """A snapshot of one commit's ``src/citadel`` and ``examples``, which the server imports."""

    folder: Path
    commit: str

    def pythonpath(self) -> str:
        return f"{self.folder / 'src'}{os.pathsep}{self.folder}"


def git(*arguments: str) -> str:
    return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def snapshot(revision: str) -> Build:
    """Extract ``revision``'s ``src/citadel`` and ``examples`` once into ``BUILDS``; return the snapshot."""
    commit = git("rev-parse", "--short", revision)
    folder = BUILDS / commit
    if not (folder / "src" / "citadel").is_dir():
        partial = folder.with_name(f"{commit}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", commit, "src/citadel", "examples"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(partial)], input=archive, check=True)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return Build(folder, commit)


def server_env(config: Configuration, build: Build, secret: str, seed: Seed, backpressure: int) -> dict[str, str]:
    """The environment ``bench/vu_server.py`` gives the server, plus ``config``'s telemetry settings and the
    snapshot first on the import path. Inherited ``CITADEL_*``, ``OTEL_*`` and metrics-directory variables are
    dropped, so that the configuration alone decides."""
    dropped = ("CITADEL_", "OTEL_", "PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env |= {
        "PYTHONPATH": build.pythonpath(),
        "CITADEL_AUTH_SECRET": secret,
        "CITADEL_MASTER_KEY_FILE": str(seed.master_key_file.resolve()),
        "CITADEL_RATE_LIMIT_RATE": "1000000000",  # as in bench/vu_server.py: the limiter runs, never refuses
        "CITADEL_RATE_LIMIT_BURST": "1000000000",
        "CITADEL_RATE_LIMIT_ADDRESS_RATE": "1000000000",
        "CITADEL_RATE_LIMIT_ADDRESS_BURST": "1000000000",
        "CITADEL_MAX_CONNECTIONS_PER_CLIENT": "0",
        **({"CITADEL_MAX_CONNECTIONS": str(backpressure)} if backpressure else {}),
    }
    return env | config.env


def check_imports(build: Build) -> None:
    """Fail unless a process started as the server is (from the snapshot's folder, with its import path) imports
    Citadel and the shop from the snapshot, and has the OpenTelemetry SDK with its OTLP exporter.

    Raises:
        SystemExit: one of them comes from elsewhere or is missing.
    """
    probe = (
        "import citadel, examples.shop, opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http;"
        "print(citadel.__file__); print(examples.shop.__file__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": build.pythonpath()}
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=build.folder, env=env, capture_output=True, text=True, check=False
    )
    paths = found.stdout.split()
    if found.returncode != 0 or len(paths) != 2 or not all(p.startswith(str(build.folder)) for p in paths):
        raise SystemExit(f"the server would not run the snapshot in {build.folder}:\n{found.stdout}{found.stderr}")


def start(config: Configuration, store_url: str, build: Build, files: dict[str, Path], args: Any, seed: Seed) -> Server:
    """Start ``citadel serve examples.shop:app`` from the snapshot, its output (stdout and stderr) to a file."""
    port = free_port()
    command = [str(CITADEL), "serve", "examples.shop:app", "--port", str(port), "--store", store_url]
    command += ["--workers", str(args.workers), "--server", "citadel", "--consumers", "workers"]
    env = server_env(config, build, files["secret"].read_text(), seed, args.backpressure)
    log = files["folder"] / f"{Path(store_url).stem}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=build.folder, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    wait_until_ready(server, args.workers)
    return server


def start_profile(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Start py-spy (from this environment, the benchmark environment or the PATH) on ``pid`` for ``seconds``:
    raw collapsed stacks to ``output``, its messages beside it.

    Raises:
        SystemExit: there is no py-spy.
    """
    candidates = (Path(sys.executable).parent / "py-spy", ROOT / ".venv-bench" / "bin" / "py-spy")
    spy = next((str(c) for c in candidates if c.exists()), None) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: `make vu` builds .venv-bench, which holds it")
    command = [spy, "record", "--pid", str(pid), "--duration", f"{seconds:g}", "-o", str(output), "-f", "raw"]
    command += ["--full-filenames"]
    with output.with_suffix(".log").open("wb") as messages:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=messages)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core, every process) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def run_once(
    config: Configuration, label: str, seed: Seed, load: Load, files: dict[str, Path], build: Build, args: Any
) -> Result:
    """Serve a fresh copy of the seed in ``config``, warm it up, measure it; return the run's figures (with a
    py-spy profile of the busiest worker when ``label`` is ``profile``)."""
    slug = f"telemetry-{config.key.lower()}-{label}"
    store_url = copy_store(seed, files["folder"], slug)
    print(f"\n== {config.key} ({config.label}), run {label}; disk settled in {settle_disk():.1f} s", flush=True)
    server = start(config, store_url, build, files, args, seed)
    marks: dict[str, Any] = {}
    profiled = files["folder"] / f"{slug}-py-spy.txt"

    def measuring() -> None:
        if label == "profile":
            seconds = min(args.profile_seconds, load.duration)
            marks["spy"] = start_profile(busiest_worker(server.process.pid), seconds, profiled)
        marks["cpu_before"] = tree_cpu_seconds(server.process.pid)
        marks["busy_before"] = machine_busy_seconds()

    try:
        measured = run_vuload(load, server.url, files["all"], files["folder"] / f"{slug}-run.txt", measuring)
        cpu = tree_cpu_seconds(server.process.pid) - marks["cpu_before"]
        busy = machine_busy_seconds() - marks["busy_before"]
    finally:
        stop_server(server)
        if "spy" in marks:
            marks["spy"].wait()
    seconds = measured["duration_us"] / 1e6
    requests = measured["requests"]
    result: Result = {
        "configuration": config.key,
        "run": label,
        "requests_per_second": requests / seconds,
        "ok_per_second": measured["statuses"].get("2xx", 0) / seconds,
        "latency_ms": {k: measured["latency_us"][k] / 1000 for k in ("mean", "p50", "p99")},
        "server_cpu_seconds": cpu,
        "server_cores": cpu / seconds,
        "cpu_ms_per_answer": 1000 * cpu / max(1, requests),
        "generator_cores": measured["generator_cpu_seconds"] / seconds,
        # the rest of the machine's busy time: other work competing with the server for the cores
        "other_cores": (busy - cpu - measured["generator_cpu_seconds"]) / seconds,
        "errors": measured["errors"],
        "statuses": measured["statuses"],
        "server_log_bytes": server.log.stat().st_size,
        "server_log_lines": count_lines(server.log),
    }
    if label == "profile" and profiled.exists():
        result["profile"] = summarize_telemetry(profiled)
    print(
        f"  {result['requests_per_second']:,.0f} requests/s, {result['latency_ms']['mean']:.1f} ms average, "
        f"{result['cpu_ms_per_answer']:.3f} ms server CPU per answer, other work {result['other_cores']:.2f} cores, "
        f"log {result['server_log_lines']:,} lines",
        flush=True,
    )
    if not args.keep:
        remove_copy(store_url)
        if result["server_log_bytes"] > 1 << 20:
            server.log.unlink()  # request log lines: hundreds of MB a run
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000, help="virtual users")
    parser.add_argument("--threads", type=int, default=2, help="the load generator's threads")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of warm-up before measuring")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds measured")
    parser.add_argument("--timeout", type=float, default=30.0, help="requests older than this count as timeouts")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the configurations")
    parser.add_argument("--configurations", default="A,B,C", help="which, in each round's order (also M, T)")
    parser.add_argument("--workers", type=int, default=2, help="the server's worker processes")
    parser.add_argument("--revision", default="HEAD", help="the commit the server runs")
    parser.add_argument("--users", type=int, default=10_000, help="seeded customers")
    parser.add_argument("--orders", type=int, default=100_000, help="seeded orders with open invoices")
    parser.add_argument("--items", type=int, default=20, help="seeded content items")
    parser.add_argument("--backpressure", type=int, default=12_000, help="CITADEL_MAX_CONNECTIONS (0: default)")
    parser.add_argument(
        "--profile", choices=["A", "B", "C", "M", "T"], help="one more run of this configuration, py-spied"
    )
    parser.add_argument("--profile-seconds", type=float, default=20.0, help="how long py-spy records")
    parser.add_argument("--keep", action="store_true", help="keep the database copies and the server logs")
    parser.add_argument("--json", type=Path, default=OUTPUT, help="where to write the raw results")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.chdir(ROOT)
    raise_file_limit()
    build = snapshot(args.revision)
    configs = configurations(free_port())
    wanted = [configs[key.strip()] for key in args.configurations.split(",")]
    check_imports(build)
    generator = ensure_vuload(ROOT)
    load = Load("vuload", generator, args.connections, args.threads, args.warmup, args.duration, args.timeout)
    seed = load_or_seed(SeedParameters(args.users, args.orders, args.items), "sqlite")
    files = prepare_files(seed, load)
    started = datetime.datetime.now(datetime.UTC)
    print(f"build {build.commit} from {build.folder}; seed {'cached' if seed.cached else 'made now'}", flush=True)
    runs = [
        run_once(config, str(n), seed, load, files, build, args) for n in range(1, args.rounds + 1) for config in wanted
    ]
    profile = run_once(configs[args.profile], "profile", seed, load, files, build, args) if args.profile else None
    command = " ".join(["python", "bench/telemetry_cost.py", *sys.argv[1:]])
    print(
        f"\n{started:%Y-%m-%d %H:%M} UTC, build {build.commit}, {load.connections:,} virtual users, "
        f"{load.warmup:g} s warm-up, {load.duration:g} s measured, {args.workers} workers; `{command}`\n"
    )
    summary = print_table(runs, {c.key: c.label for c in wanted})
    if profile is not None and "profile" in profile:
        print_profile(profile["profile"], args.profile)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "build": build.commit,
        "command": command,
        "load": {"connections": load.connections, "warmup": load.warmup, "duration": load.duration},
        "seed": {"users": args.users, "orders": args.orders, "items": args.items, "cached": seed.cached},
        "configurations": {c.key: {"label": c.label, "env": c.env} for c in wanted},
        "runs": runs,
        "summary": summary,
        "profile": profile,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nraw results: {args.json}; run files in {files['folder']}")


if __name__ == "__main__":
    main()
