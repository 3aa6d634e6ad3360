"""The HTTP server alone, after hostile clients: what holding 10,000 keep-alive virtual users costs, Citadel's
server against granian and uvicorn.

Each server answers a fixed 56-byte JSON body (no application work) with two workers. It first meets the same
hostile probes (``bench/probes.py``: an endless request line, 5,000 headers, ``GET /%ff``, credentials in a
chunked trailer, pipelined requests never read, slowloris for 15 s where the usual test runs 30 s, to keep the
bench short); the probes table shows what each server answered, whether it closed the connection, and how much
its memory grew. Then, on the same server processes, ``wrk`` holds ``--connections`` keep-alive connections, each
thinking 0.5-1.5 s between requests (as ``bench/vu.py``), for ``--duration`` seconds after a warm-up. The load
table shows requests/s, latency, the CPU the server's processes used per answer, and the peak RSS of all its
processes together (sampled every 0.5 s). The last line says whether Citadel's server beats granian on both CPU
per answer and peak memory in this run: only ratios within one run compare.

Rows: Citadel's server (``citadel.http.server``, uvloop + httptools, default limits except none per client
address, as all the load comes from one address), granian's ASGI interface, uvicorn (httptools, uvloop; its
concurrency is unlimited by default, its listen backlog is raised as granian's is), and, on request, granian's
own RSGI interface (its fastest path, which Citadel's ASGI app could not use as is).

Usage: ``python bench/http_server.py [--connections 10000] [--warmup 5] [--duration 15] [--workers 2]
[--servers citadel,granian,uvicorn,granian-rsgi]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import ensure_wrk, free_port, raise_file_limit, tree_cpu_seconds, tree_rss_kb
from probes import PROBES, run_probes, still_serves

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BODY = b'{"id":"0123456789abcdef","status":"open","amount":1234}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
LUA = """
request = function() return wrk.format("GET", "/orders/order?order_id=0123456789abcdef") end
delay = function() return math.random(500, 1500) end
"""
BACKLOG = 16384


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI app every server runs: a fixed JSON answer (the lifespan is acknowledged)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def hello_rsgi(scope: Any, protocol: Any) -> None:
    """The same answer through granian's RSGI interface."""
    protocol.response_bytes(200, [("content-type", "application/json")], BODY)


def serve_citadel(port: int, workers: int) -> None:
    """Serve ``hello`` with Citadel's server (run in the child process of the Citadel row)."""
    from citadel.http.server import Limits, accept_queues, listeners, run_workers

    queues = accept_queues(BACKLOG)
    run_workers(
        workers,
        lambda slot: hello,
        lambda: listeners("127.0.0.1", port, queues, backlog=BACKLOG),
        limits=Limits(max_connections_per_client=0),
    )


def command_of(kind: str, port: int, workers: int) -> list[str]:
    if kind == "citadel":
        return [sys.executable, __file__, "--serve", str(port), "--workers", str(workers)]
    if kind == "uvicorn":
        return [
            str(BIN / "uvicorn"), "--http", "httptools", "--loop", "uvloop", "--workers", str(workers),
            "--backlog", str(BACKLOG), "--log-level", "warning", "--host", "127.0.0.1", "--port", str(port),
            "--app-dir", str(ROOT / "bench"), "http_server:hello",
        ]  # fmt: skip
    if kind not in ("granian", "granian-rsgi"):
        raise SystemExit(f"unknown server {kind!r}: give citadel, granian, granian-rsgi or uvicorn")
    interface, target = ("asgi", "http_server:hello") if kind == "granian" else ("rsgi", "http_server:hello_rsgi")
    return [
        str(BIN / "granian"), "--interface", interface, "--workers", str(workers), "--loop", "uvloop",
        "--backpressure", str(BACKLOG), "--backlog", str(BACKLOG), "--port", str(port), "--log-level", "warning",
        "--working-dir", str(ROOT / "bench"), target,
    ]  # fmt: skip


def wait_until_serving(port: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.2)
            continue
        if still_serves(port):
            return True
        time.sleep(0.2)
    return False


def load(server: int, port: int, args: argparse.Namespace, script: Path, wrk_path: str) -> dict[str, Any]:
    """``wrk`` against the server on ``port`` (``server``: its process tree's root); return the load row."""
    seconds = args.warmup + args.duration
    url = f"http://127.0.0.1:{port}"
    wrk = [wrk_path, "-t2", f"-c{args.connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    run = subprocess.Popen(wrk, stdout=subprocess.PIPE, text=True)
    time.sleep(args.warmup)
    cpu_before, started, peak_kb = tree_cpu_seconds(server), time.monotonic(), 0
    while run.poll() is None:
        peak_kb = max(peak_kb, tree_rss_kb(server))
        time.sleep(0.5)
    used, elapsed = tree_cpu_seconds(server) - cpu_before, time.monotonic() - started
    out = run.stdout.read() if run.stdout else ""
    rps_found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rps = float(rps_found.group(1)) if rps_found else 0.0
    latency = re.search(r"Latency\s+([\d.]+)(\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": rps,
        "avg": f"{latency.group(1)} {latency.group(2)}" if latency else "?",
        "p99": f"{p99.group(1)} {p99.group(2)}" if p99 else "?",
        "server_cores": used / elapsed,
        "ms_per_answer": used / elapsed / rps * 1000 if rps else float("nan"),
        "peak_rss_mb": peak_kb / 1024,
        "socket_errors": errors.group(1) if errors else "none",
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def measure(kind: str, args: argparse.Namespace, script: Path, wrk_path: str) -> dict[str, Any]:
    """Start one server, probe it, then load it; return its row (the probe cells under ``probes``)."""
    port = free_port()
    server = subprocess.Popen(
        command_of(kind, port, args.workers),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        if not wait_until_serving(port):
            raise SystemExit(f"{kind} did not answer within 20 s")
        time.sleep(1.0)
        print(f"{kind}: probing ...", flush=True)
        probes = run_probes(port, server.pid) if args.probes else {}
        if not wait_until_serving(port, 10.0):
            print(f"{kind}: does not answer after the probes; no load run", flush=True)
            return {"server": kind, "probes": probes, "load": None}
        time.sleep(1.0)
        print(f"{kind}: loading ...", flush=True)
        row = load(server.pid, port, args, script, wrk_path)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
    return {"server": kind, "probes": probes, "load": row}


def print_probes(results: list[dict[str, Any]]) -> None:
    labels = [("rss", "RSS before -> after"), *((p.key, p.label) for p in PROBES)]
    width = {r["server"]: max(len(r["server"]), *(len(c) for c in r["probes"].values())) + 2 for r in results}
    print("".join([f"{'probe':<24}", *(f"{r['server']:<{width[r['server']]}}" for r in results)]).rstrip())
    for key, label in labels:
        cells = (f"{r['probes'].get(key, '-'):<{width[r['server']]}}" for r in results)
        print("".join([f"{label:<24}", *cells]).rstrip())


def print_load(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"{args.connections:,} keep-alive connections, think time 0.5-1.5 s, {args.workers} workers, fixed answer")
    header = f"{'server':<14}{'req/s':>9}{'avg':>11}{'p99':>11}{'cores':>7}{'ms/answer':>11}{'peak RSS':>10}"
    print(f"{header}  socket errors")
    for result in results:
        row = result["load"]
        if row is None:
            print(f"{result['server']:<14}{'no load run: the server stopped answering after the probes':>60}")
            continue
        print(
            f"{result['server']:<14}{row['requests_per_s']:>9,.0f}{row['avg']:>11}{row['p99']:>11}"
            f"{row['server_cores']:>7.2f}{row['ms_per_answer']:>11.4f}{row['peak_rss_mb']:>7,.0f} MB  "
            f"{row['socket_errors']}" + (f"; {row['non_2xx']:,} answers not 2xx" if row["non_2xx"] else "")
        )


def verdict(results: list[dict[str, Any]]) -> str:
    rows = {r["server"]: r["load"] for r in results if r["load"] is not None}
    if "citadel" not in rows or "granian" not in rows:
        return "verdict: none (needs load rows for both citadel and granian)"
    cpu = rows["citadel"]["ms_per_answer"] / rows["granian"]["ms_per_answer"]
    memory = rows["citadel"]["peak_rss_mb"] / rows["granian"]["peak_rss_mb"]
    beats = "beats" if cpu < 1 and memory < 1 else "does NOT beat"
    return (
        f"verdict: Citadel's server {beats} granian on CPU per answer and peak memory in this run: "
        f"CPU per answer {cpu:.2f}x granian's, peak RSS {memory:.2f}x granian's"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--servers", default="citadel,granian,uvicorn")
    parser.add_argument("--no-probes", dest="probes", action="store_false", help="load only")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the Citadel row's child process
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "http_server.json")
    args = parser.parse_args()
    if args.serve:
        serve_citadel(args.serve, args.workers)
        return
    raise_file_limit()
    wrk_path = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    try:
        results = [measure(kind, args, Path(script.name), wrk_path) for kind in args.servers.split(",")]
    finally:
        Path(script.name).unlink()
    print()
    if args.probes:
        print_probes(results)
        print()
    print_load(results, args)
    print()
    print(verdict(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"raw rows written to {args.json}")


if __name__ == "__main__":
    main()
