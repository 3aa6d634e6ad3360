"""The HTTP server alone: what holding 10,000 keep-alive virtual users costs, Citadel's server against granian.

Each server answers a fixed 56-byte JSON body (no application work) with two workers; ``wrk`` holds
``--connections`` keep-alive connections, each thinking 0.5-1.5 s between requests (as ``bench/vu.py``), for
``--duration`` seconds after a warm-up. The table shows requests/s, latency, the CPU the server's processes used
per answer, and the peak RSS of all its processes together (sampled every 0.5 s).

Rows: Citadel's server (``citadel.http.server``, uvloop + httptools), granian's ASGI interface, and granian's own
RSGI interface (its fastest path, which Citadel's ASGI app could not use as is).

Usage: ``python bench/http_server.py [--connections 10000] [--warmup 5] [--duration 15] [--workers 2]``.
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

from machine import ensure_wrk, free_port, process_tree, raise_file_limit, rss_kb, tree_cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BODY = b'{"id":"0123456789abcdef","status":"open","amount":1234}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
LUA = """
request = function() return wrk.format("GET", "/orders/order?order_id=0123456789abcdef") end
delay = function() return math.random(500, 1500) end
"""


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
    from citadel.http.server import accept_queues, listeners, run_workers

    queues = accept_queues(16384)
    run_workers(workers, lambda: hello, lambda: listeners("127.0.0.1", port, queues, backlog=16384))


def command_of(kind: str, port: int, workers: int) -> list[str]:
    if kind == "citadel":
        return [sys.executable, __file__, "--serve", str(port), "--workers", str(workers)]
    interface, target = ("asgi", "http_server:hello") if kind == "granian-asgi" else ("rsgi", "http_server:hello_rsgi")
    return [
        str(BIN / "granian"), "--interface", interface, "--workers", str(workers), "--loop", "uvloop",
        "--backpressure", "16384", "--backlog", "16384", "--port", str(port), "--log-level", "warning",
        "--working-dir", str(ROOT / "bench"), target,
    ]  # fmt: skip


def measure(kind: str, args: argparse.Namespace, script: Path, wrk_path: str) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen(
        command_of(kind, port, args.workers),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.0)
        url = f"http://127.0.0.1:{port}"
        seconds = args.warmup + args.duration
        wrk = [wrk_path, "-t2", f"-c{args.connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
        load = subprocess.Popen(wrk, stdout=subprocess.PIPE, text=True)
        time.sleep(args.warmup)
        cpu_before, started, peak_kb = tree_cpu_seconds(server.pid), time.monotonic(), 0
        while load.poll() is None:
            peak_kb = max(peak_kb, sum(rss_kb(pid) for pid in process_tree(server.pid)))
            time.sleep(0.5)
        used, elapsed = tree_cpu_seconds(server.pid) - cpu_before, time.monotonic() - started
        out = load.stdout.read() if load.stdout else ""
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"Latency\s+([\d.]+)(\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "server": kind,
        "requests_per_s": rps,
        "avg": f"{latency.group(1)} {latency.group(2)}" if latency else "?",
        "p99": f"{p99.group(1)} {p99.group(2)}" if p99 else "?",
        "server_cores": used / elapsed,
        "ms_per_answer": used / elapsed / rps * 1000,
        "peak_rss_mb": peak_kb / 1024,
        "socket_errors": errors.group(1) if errors else "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--servers", default="citadel,granian-asgi,granian-rsgi")
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
    rows = []
    print(f"{args.connections:,} keep-alive connections, think time 0.5-1.5 s, {args.workers} workers, fixed answer")
    header = f"{'server':<14}{'req/s':>9}{'avg':>11}{'p99':>11}{'cores':>7}{'ms/answer':>11}{'peak RSS':>10}"
    print(f"{header}  socket errors")
    for kind in args.servers.split(","):
        row = measure(kind, args, Path(script.name), wrk_path)
        rows.append(row)
        print(
            f"{kind:<14}{row['requests_per_s']:>9,.0f}{row['avg']:>11}{row['p99']:>11}{row['server_cores']:>7.2f}"
            f"{row['ms_per_answer']:>11.4f}{row['peak_rss_mb']:>7,.0f} MB  {row['socket_errors']}",
            flush=True,
        )
    Path(script.name).unlink()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"raw rows written to {args.json}")


if __name__ == "__main__":
    main()
