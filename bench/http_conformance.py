"""gunicorn's request corpus against three HTTP/1.1 servers for ASGI: Citadel's, granian's and uvicorn's (httptools,
uvloop), each serving the same echo app (``tests/http/conformance.py``) from a process of its own, one worker.

The verdicts are those of ``tests/http/test_conformance.py``: pass, fail (the app saw a request other than
gunicorn's, or one gunicorn refuses), deviation (a request gunicorn accepts is refused) and not applicable (the
case hinges on a gunicorn setting the server has no equivalent of). Citadel's server is set to the gunicorn
limits a case hinges on (one process per set of limits); granian and uvicorn have no such settings, so cases that
hinge on a limit are not applicable to them. The table counts the verdicts; the list below it names every case on
which the servers disagree.

Usage: ``python bench/http_conformance.py [--servers citadel,granian,uvicorn] [--details]`` (``make test`` fetches
the corpus).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from machine import free_port  # noqa: E402
from tests.http.conformance import Outcome, echo, judge, send_case  # noqa: E402
from tests.http.corpus import CORPUS, MAPPED_LIMITS, Case, CaseLimits, load_cases  # noqa: E402

APP = "tests.http.conformance:echo"


@dataclass(frozen=True)
class Server:
    name: str
    mapped: frozenset[str]
    """The gunicorn limits it can be set to."""
    command: Callable[[int, CaseLimits], list[str]]


def citadel_command(port: int, limits: CaseLimits) -> list[str]:
    return [sys.executable, __file__, "--serve", str(port), "--limits", f"{limits.request_line},{limits.headers}"]


def granian_command(port: int, limits: CaseLimits) -> list[str]:
    return [
        str(BIN / "granian"), "--interface", "asgi", "--http", "1", "--workers", "1", "--loop", "uvloop",
        "--port", str(port), "--log-level", "warning", "--working-dir", str(ROOT), APP,
    ]  # fmt: skip


def uvicorn_command(port: int, limits: CaseLimits) -> list[str]:
    return [
        str(BIN / "uvicorn"), "--http", "httptools", "--loop", "uvloop", "--port", str(port), "--log-level",
        "warning", "--no-access-log", "--app-dir", str(ROOT), APP,
    ]  # fmt: skip


SERVERS = {
    "citadel": Server("citadel", MAPPED_LIMITS, citadel_command),
    "granian": Server("granian", frozenset(), granian_command),
    "uvicorn": Server("uvicorn", frozenset(), uvicorn_command),
}


def serve_citadel(port: int, limits: CaseLimits) -> None:
    """Serve the echo app with Citadel's server, set to ``limits`` (the child process of the Citadel rows)."""
    from citadel.http.server import bind, serve_forever
    from tests.http.conformance import citadel_options

    serve_forever(lambda slot: echo, [bind("127.0.0.1", port)], **citadel_options(limits))


class Processes:
    """The servers' processes, one per server and set of limits it can be set to, started when first needed."""

    def __init__(self) -> None:
        self.ports: dict[tuple[str, CaseLimits | None], int] = {}
        self.running: list[subprocess.Popen[bytes]] = []

    def port(self, server: Server, limits: CaseLimits) -> int:
        key = (server.name, limits if server.mapped else None)
        if key not in self.ports:
            port = free_port()
            self.running.append(
                subprocess.Popen(
                    server.command(port, limits),
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            wait_for(port)
            self.ports[key] = port
        return self.ports[key]

    def stop(self) -> None:
        for process in self.running:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"no server came up on port {port}")


async def run(servers: list[Server], cases: dict[str, Case], processes: Processes) -> dict[str, dict[str, Outcome]]:
    outcomes: dict[str, dict[str, Outcome]] = {server.name: {} for server in servers}
    for server in servers:
        for name, case in cases.items():
            port = processes.port(server, case.limits)
            reply = await send_case(case, "127.0.0.1", port)
            outcomes[server.name][name] = judge(case, reply, mapped=server.mapped)
    return outcomes


def report(outcomes: dict[str, dict[str, Outcome]], details: bool) -> None:
    kinds = ("pass", "fail", "deviation", "not applicable")
    print(f"{'server':<10}{'passed':>8}{'failed':>8}{'deviations':>12}{'not applicable':>16}")
    for server, verdicts in outcomes.items():
        counts = [sum(outcome.verdict == kind for outcome in verdicts.values()) for kind in kinds]
        print(f"{server:<10}{counts[0]:>8}{counts[1]:>8}{counts[2]:>12}{counts[3]:>16}")
    names = next(iter(outcomes.values())).keys()
    split = [name for name in names if len({verdicts[name].verdict for verdicts in outcomes.values()}) > 1]
    print(f"\nCases on which the servers disagree ({len(split)}):")
    for name in split:
        print(f"  {name}")
        for server, verdicts in outcomes.items():
            print(f"    {server:<9}{verdicts[name].verdict:<16}{verdicts[name].reason}")
    if details:
        for server, verdicts in outcomes.items():
            print(f"\n{server}: every verdict other than pass")
            for name, outcome in verdicts.items():
                if outcome.verdict != "pass":
                    print(f"  {name:<46}{outcome.verdict:<16}{outcome.reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="citadel,granian,uvicorn")
    parser.add_argument("--details", action="store_true", help="list every verdict other than pass, per server")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the Citadel rows' child process
    parser.add_argument("--limits", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        line, headers = (int(value) for value in args.limits.split(","))
        serve_citadel(args.serve, CaseLimits(line, headers))
        return
    cases = load_cases(args.corpus)
    servers = [SERVERS[name] for name in args.servers.split(",")]
    processes = Processes()
    started = time.monotonic()
    try:
        outcomes = asyncio.run(run(servers, cases, processes))
    finally:
        processes.stop()
    print(f"gunicorn's request corpus, {len(cases)} cases, {time.monotonic() - started:.0f} s\n")
    report(outcomes, args.details)


if __name__ == "__main__":
    main()
