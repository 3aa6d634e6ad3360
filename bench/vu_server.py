"""The server under the virtual users (imported by ``bench/vu.py``): ``citadel serve`` started with the benchmark's
settings and stopped, the resident memory of its processes sampled, and py-spy on its busiest worker."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from machine import cpu_seconds, free_port, open_sockets, process_tree, pss_kb, rss_kb

if TYPE_CHECKING:
    from vu_seed import Seed

__all__ = ["RssSampler", "Server", "busiest_worker", "profile", "start_server", "stop_server"]

ROOT = Path(__file__).resolve().parents[1]
CITADEL = Path(sys.executable).parent / "citadel"
PY_SPY = Path(sys.executable).parent / "py-spy"

Result = dict[str, Any]


@dataclass
class Server:
    """A running ``citadel serve`` and its output file."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def start_server(
    store_url: str,
    workers: int,
    server_kind: str,
    secret: str,
    seed: Seed,
    log: Path,
    backpressure: int,
    consumers: str = "workers",
) -> Server:
    """Start ``citadel serve examples.shop:app`` on a free port with the benchmark's settings (``backpressure``:
    connections each worker serves, ``max_connections``; 0 keeps Citadel's default; ``consumers``: where the
    projections and process managers run)."""
    port = free_port()
    command = [str(CITADEL), "serve", "examples.shop:app", "--port", str(port), "--store", store_url]
    command += ["--workers", str(workers), "--server", server_kind, "--consumers", consumers]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    env |= {
        "CITADEL_AUTH_SECRET": secret,
        "CITADEL_MASTER_KEY_FILE": str(seed.master_key_file.resolve()),
        "CITADEL_RATE_LIMIT_RATE": "1000000000",  # the limiter still runs, but never refuses
        "CITADEL_RATE_LIMIT_BURST": "1000000000",
        "CITADEL_RATE_LIMIT_ADDRESS_RATE": "1000000000",  # every virtual user comes from one address
        "CITADEL_RATE_LIMIT_ADDRESS_BURST": "1000000000",
        "CITADEL_MAX_CONNECTIONS_PER_CLIENT": "0",
        **({"CITADEL_MAX_CONNECTIONS": str(backpressure)} if backpressure else {}),
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    wait_until_ready(server, workers)
    return server


def wait_until_ready(server: Server, workers: int, timeout: float = 60.0) -> None:
    """Wait until /health answers and all the workers are up.

    Raises:
        SystemExit: the server exited or did not answer within ``timeout`` seconds (with its output).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"citadel serve exited with {server.process.returncode}:\n{server.tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{server.url}/health", timeout=2) as answer:
            if answer.status == 200 and len(process_tree(server.process.pid)) >= workers:
                time.sleep(1.0)  # let the other workers finish starting their applications
                return
        time.sleep(0.2)
    raise SystemExit(f"citadel serve did not answer /health within {timeout} s:\n{server.tail()}")


def stop_server(server: Server) -> None:
    """Interrupt the server as Ctrl-C would; kill its process group if it does not stop in 30 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


@dataclass
class RssSampler:
    """Samples the summed VmRSS of a process tree every ``interval`` seconds in a thread."""

    root: int
    interval: float = 0.5
    peak_kb: int = 0
    peak_by_process_kb: list[int] = field(default_factory=list)
    peak_pss_kb: int = 0
    peak_sockets: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> Result:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return {
            "peak_kb": self.peak_kb,
            "peak_by_process_kb": self.peak_by_process_kb,
            "peak_pss_kb": self.peak_pss_kb,
            "peak_sockets": self.peak_sockets,
            "samples": [(round(t, 1), kb) for t, kb in self.samples],
        }

    def _run(self) -> None:
        started = time.monotonic()
        sockets_every = max(1, round(2.0 / self.interval))  # counting 10,000 descriptors is slower: every 2 s
        for tick in itertools.count():
            if self._stop.is_set():
                break
            tree = process_tree(self.root)
            each = sorted((rss_kb(pid) for pid in tree), reverse=True)
            total = sum(each)
            self.samples.append((time.monotonic() - started, total))
            if total > self.peak_kb:
                self.peak_kb, self.peak_by_process_kb = total, each
                self.peak_pss_kb = max(self.peak_pss_kb, sum(pss_kb(pid) for pid in tree))
            if tick % sockets_every == 0:
                self.peak_sockets = max(self.peak_sockets, sum(open_sockets(pid) for pid in tree))
            self._stop.wait(self.interval)


def busiest_worker(root: int) -> int:
    """The descendant of ``root`` that used the most CPU (a granian worker under load)."""
    descendants = process_tree(root)[1:] or [root]
    return max(descendants, key=cpu_seconds)


def profile(pid: int, seconds: float, output: Path, gil: bool = False) -> subprocess.Popen[bytes] | None:
    """Start py-spy on ``pid`` for ``seconds`` (raw collapsed stacks to ``output``; with ``gil``, only the thread
    holding the GIL, i.e. Python's CPU time); None without py-spy."""
    spy = PY_SPY if PY_SPY.exists() else shutil.which("py-spy")
    if not spy:
        print("py-spy not found: no profile", flush=True)
        return None
    command = [str(spy), "record", "--pid", str(pid), "--duration", f"{seconds:g}", "-o", str(output), "-f", "raw"]
    command += ["--gil"] if gil else []
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
