"""A NATS server of a test's own: Debian's ``nats-server``, started from a config file on a free port with
JetStream in a temporary folder, and stopped (its folder removed) when the test ends, passed or failed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP = 10.0


def nats_server_binary() -> str:
    """The ``nats-server`` executable; fails the test (never skips it) when it is not installed."""
    found = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(found, os.X_OK):
        pytest.fail("nats-server is not installed: `apt-get install nats-server` (Debian) puts it in /usr/sbin")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class NatsServer:
    """A running ``nats-server``: its port, its folder, and its log (for a test's failure message)."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"tls://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")


def _wait_until_listening(server: NatsServer) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"nats-server exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"nats-server did not listen within {STARTUP} s:\n{server.log()}")


@contextlib.contextmanager
def nats_server(
    config: str, folder: Path | None = None, *, env: Mapping[str, str] | None = None
) -> Iterator[NatsServer]:
    """Run ``nats-server`` with ``config`` (what goes after ``listen`` and ``jetstream``; ``env`` adds to its
    environment, where the config's ``$NAMES`` are looked up); the config and the JetStream store live in
    ``folder`` (a new temporary one by default, removed afterwards)."""
    binary = nats_server_binary()
    own = folder is None
    where = Path(tempfile.mkdtemp(prefix="citadel-nats-")) if folder is None else folder
    where.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = where / "server.conf"
    try:
        with open(os.open(conf, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600), "w") as file:  # it holds passwords
            file.write(
                f"listen: 127.0.0.1:{port}\njetstream {{ store_dir: {json.dumps(str(where / 'js'))} }}\n{config}\n"
            )
        with (where / "server.log").open("wb") as log:
            environment = {**os.environ, **(env or {})}
            process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, env=environment)
        server = NatsServer(port, where, process)
        try:
            _wait_until_listening(server)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        if own:
            shutil.rmtree(where, ignore_errors=True)
