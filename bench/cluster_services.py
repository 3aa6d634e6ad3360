"""The scale-out rig's servers (imported by ``bench/cluster.py``): PostgreSQL, a NATS cluster with JetStream,
Citadel nodes and HAProxy, each started as a process of its own session, in its host's namespace or (HAProxy)
on the root namespace's loopback, with its output in a log file of the run's folder.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cluster_net import Host

__all__ = [
    "LOG_FORMAT",
    "Process",
    "haproxy_config",
    "haproxy_stats",
    "nats_config",
    "postgres_binaries",
    "require",
    "wait_for",
]

CLIENT_PORT, ROUTE_PORT, MONITOR_PORT = 4222, 6222, 8222
NODE_PORT = 8000


def require(program: str, package: str) -> str:
    """The path of ``program``.

    Raises:
        SystemExit: it is missing (naming the Debian package to install).
    """
    found = shutil.which(program) or next((p for p in (f"/usr/sbin/{program}",) if os.access(p, os.X_OK)), None)
    if found is None:
        raise SystemExit(f"the scale-out rig needs {program}: apt-get install -y {package}")
    return found


def postgres_binaries() -> Path:
    """The folder of the newest installed PostgreSQL's ``initdb`` and ``postgres``.

    Raises:
        SystemExit: none is installed.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise SystemExit("the scale-out rig needs PostgreSQL's server binaries: apt-get install -y postgresql")
    return Path(found[-1]).parent


def wait_for(what: str, ready: Callable[[], bool], timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``ready`` every 0.2 s until it holds.

    Raises:
        RuntimeError: ``alive`` stopped holding, or ``timeout`` seconds went by.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited before it was ready")
        with contextlib.suppress(OSError, ValueError):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready within {timeout:g} s")


@dataclass
class Process:
    """A server the rig started, in a session of its own (so its whole process group can be signalled)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    host: Host | None = None
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        name: str,
        command: Sequence[str],
        log: Path,
        *,
        host: Host | None = None,
        env: Mapping[str, str],
        append: bool = False,
    ) -> Process:
        """Start ``command`` (inside ``host``'s namespace when given) in the environment ``env``; its output
        replaces ``log``, or goes after it with ``append``."""
        argv = host.command(*command) if host is not None else list(command)
        with log.open("ab" if append else "wb") as output:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        return cls(name, popen, log, host, tuple(command), dict(env))

    def restarted(self) -> Process:
        """The same command started again (this one must have exited), its output after the old one's."""
        if self.alive():
            raise RuntimeError(f"{self.name} still runs: stop it before restarting it")
        return Process.start(self.name, self.command, self.log, host=self.host, env=self.env, append=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 2000) -> str:
        """The end of the process's output."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 15.0) -> None:
        """Send ``sig`` to the process group; kill the group if it has not exited within ``timeout`` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # whatever the leader left behind in its group


def port_open(address: str, port: int) -> bool:
    with socket.create_connection((address, port), timeout=1):
        return True


def get_json(url: str, token: str | None = None, timeout: float = 3.0) -> tuple[int, dict[str, object]]:
    """GET ``url``; return its status and JSON body (an error status too, with its body)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


# -- PostgreSQL ------------------------------------------------------------------------------------------


def postgres_init(folder: Path, binaries: Path, subnet: str) -> Path:
    """A new database cluster in ``folder`` (owned by the ``postgres`` user, which runs the server), trusting
    the rig's subnet; return its data directory."""
    folder.mkdir(mode=0o755, parents=True)
    shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]
    done = subprocess.run(
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *initdb],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {subnet} trust\n")
    return data


def postgres_command(binaries: Path, data: Path, address: str) -> list[str]:
    """The server on ``address`` only (no socket outside its folder), as the ``postgres`` user."""
    settings = {
        "listen_addresses": address,
        "unix_socket_directories": str(data.parent),
        "max_connections": "300",
        "shared_buffers": "256MB",
        "logging_collector": "off",
    }
    options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    return [*as_postgres, str(binaries / "postgres"), "-D", str(data), *options]


# -- NATS ------------------------------------------------------------------------------------------------


def nats_config(host: Host, peers: Sequence[Host], store: Path, cluster: str) -> str:
    """A cluster member's configuration: clients, routes and monitoring on its own address, JetStream on."""
    routes = ", ".join(f"nats-route://{peer.address}:{ROUTE_PORT}" for peer in peers if peer != host)
    return (
        f'server_name: "{host.name}"\n'
        f'listen: "{host.address}:{CLIENT_PORT}"\n'
        f'http: "{host.address}:{MONITOR_PORT}"\n'
        f'jetstream {{ store_dir: "{store}" }}\n'
        f'cluster {{\n  name: "{cluster}"\n  listen: "{host.address}:{ROUTE_PORT}"\n  routes: [{routes}]\n}}\n'
    )


def nats_meta_leader(host: Host) -> str | None:
    """The JetStream meta leader as ``host``'s monitoring endpoint sees it (None while there is none)."""
    status, body = get_json(f"http://{host.address}:{MONITOR_PORT}/jsz")
    meta = body.get("meta_cluster") if status == 200 else None
    leader = meta.get("leader") if isinstance(meta, dict) else None
    return str(leader) if leader else None


# -- HAProxy ---------------------------------------------------------------------------------------------


LOG_FORMAT = "%Ts.%ms %Tt %s %ST %HM %HP %hs"
"""HAProxy's line per request when it logs (``haproxy_config(log=True)``): accept time (Unix seconds), total
milliseconds, server, status, method, path and the answer's ``Retry-After`` in braces."""


def haproxy_config(bind: str, nodes: Sequence[Host], socket_path: Path, *, log: bool = False) -> str:
    """HAProxy in front of ``nodes``: round robin, each node checked on ``/ready`` every second; as many
    connections as the open-file limit allows (each takes two descriptors, client and server side). A request
    whose connection to a node fails (it never reached the node) is retried on another node. With ``log``, a
    line per request (``LOG_FORMAT``) goes to HAProxy's standard output."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    connections = min(20_000, (hard - 200) // 2) if hard != resource.RLIM_INFINITY else 20_000
    servers = "\n".join(
        f"  server {node.name} {node.address}:{NODE_PORT} check inter 1s fall 2 rise 2 maxconn 1000" for node in nodes
    )
    logging = (
        "  log stdout format raw local0\n",
        "  log global\n",
        f'  capture response header Retry-After len 8\n  log-format "{LOG_FORMAT}"\n',
    )
    on = [part if log else "" for part in logging]
    return f"""global
  maxconn {connections}
  stats socket {socket_path} mode 600 level admin
{on[0]}
defaults
  mode http
{on[1]}  option http-keep-alive
  option redispatch 1
  retries 3
  retry-on conn-failure
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout queue 30s

frontend shop
  bind {bind}
{on[2]}  default_backend nodes

backend nodes
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
{servers}
"""


def haproxy_stats(socket_path: Path) -> dict[str, dict[str, str]]:
    """``show stat`` of HAProxy's socket: each backend server's row, by its name."""
    with socket.socket(socket.AF_UNIX) as stats:
        stats.settimeout(3)
        stats.connect(str(socket_path))
        stats.sendall(b"show stat\n")
        chunks = []
        while chunk := stats.recv(65536):
            chunks.append(chunk)
    lines = b"".join(chunks).decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {r["svname"]: r for r in rows if r.get("pxname") == "nodes" and r["svname"] not in ("BACKEND", "FRONTEND")}
