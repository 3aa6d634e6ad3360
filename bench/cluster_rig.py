"""The scale-out rig itself (imported by ``bench/cluster.py`` and ``tests/bench/test_cluster.py``): one object
that starts PostgreSQL, a three-server NATS cluster, N Citadel nodes and HAProxy on a bridge of network
namespaces, seeds the shop, and takes all of it down again in ``close``, whatever state the start reached.

Each server is reachable only over the bridge: PostgreSQL and NATS listen on their namespace's address, the
nodes too; HAProxy listens on the root namespace's loopback, where the load generator runs. ``host(name)``
and ``link(name)`` give a host's namespace and the bridge-side end of its veth, where faults go.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the nodes and the seed import `examples`

from citadel.messaging.signing import ServiceKeys  # noqa: E402
from citadel.security import issue_token  # noqa: E402
from cluster_net import Host, Network, alive, run, sweep_stale  # noqa: E402
from cluster_services import (  # noqa: E402
    CLIENT_PORT,
    NODE_PORT,
    Process,
    get_json,
    haproxy_config,
    nats_config,
    nats_meta_leader,
    port_open,
    postgres_binaries,
    postgres_command,
    postgres_init,
    require,
    wait_for,
)
from machine import free_port  # noqa: E402
from vu_seed import CACHE, Seed, SeedParameters, load_or_seed  # noqa: E402

__all__ = ["NAMESPACE", "REPLICAS", "Rig", "RigOptions"]

NAMESPACE = "shop"
"""The broker URL's path: the nodes' subjects start with it and their stream is ``SHOP_EVENTS``."""
STREAM = f"{NAMESPACE.upper()}_EVENTS"
REPLICAS = 3
CITADEL = Path(sys.executable).parent / "citadel"
PG, NATS_FIRST, NODE_FIRST = 2, 3, 11
"""Host numbers on the subnet: PostgreSQL, the first NATS server, the first node."""


@dataclass(frozen=True)
class RigOptions:
    """What the rig starts: the nodes, and the seed they serve."""

    nodes: int = 3
    users: int = 500
    orders: int = 2000
    items: int = 10
    nats: int = 3
    haproxy_log: bool = False
    """HAProxy logs a line per request to ``haproxy.log`` (``cluster_services.LOG_FORMAT``)."""


class Rig:
    """The running rig; a context manager, also closed at interpreter exit if nobody closed it."""

    def __init__(self, options: RigOptions) -> None:
        """A rig not started yet (``with Rig(...)`` starts it).

        Raises:
            SystemExit: this is not root, or a program the rig needs is missing (naming its package).
        """
        if options.nodes < 1 or options.nats < 1:
            raise ValueError("the rig needs at least one node and one NATS server")
        check_requirements()
        self.options = options
        self.net = Network()
        self.id = self.net.rig
        self.folder = Path(tempfile.mkdtemp(prefix=f"citadel-{self.id}-"))
        self.folder.chmod(0o755)  # the postgres user reaches its data directory below it
        self.processes: dict[str, Process] = {}
        self.nodes: list[Host] = []
        self.nats: list[Host] = []
        self.secret = secrets.token_urlsafe(48)
        self.admin_token = issue_token(self.secret, "cluster-rig", ["admin"], ttl=3600)
        self.seed: Seed | None = None
        self.url = ""
        """HAProxy's address, where the load goes."""
        self.stats_socket = self.folder / "haproxy.sock"
        self._closed = False
        atexit.register(self.close)

    # -- the hosts ---------------------------------------------------------------------------------------

    def host(self, name: str) -> Host:
        """The host ``name`` (``pg``, ``nats1``..., ``n1``...): its namespace and address."""
        return self.net.hosts[name]

    def link(self, name: str) -> str:
        """The bridge-side veth of host ``name``: ``tc`` or ``ip link set ... down`` there acts on its traffic."""
        return self.host(name).link

    def process(self, name: str) -> Process:
        """The server running on host ``name`` (or ``haproxy``)."""
        return self.processes[name]

    @property
    def postgres_url(self) -> str:
        return f"postgresql://postgres@{self.host('pg').address}:5432"

    @property
    def store_url(self) -> str:
        if self.seed is None:
            raise RuntimeError("the rig is not started")
        return self.seed.store_url

    # -- starting ----------------------------------------------------------------------------------------

    def __enter__(self) -> Rig:
        try:
            self.start()
        except BaseException as exc:
            self.__exit__(type(exc))
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None and kind is not KeyboardInterrupt:
            print(self.logs(), file=sys.stderr, flush=True)  # what the servers said before the failure
        self.close()

    def start(self) -> None:
        """Start everything, in dependency order; each server is ready before the next starts.

        Raises:
            RuntimeError: a server did not start (with its output).
        """
        sweep_stale()
        _sweep_stale_files()
        self.net.open()
        self.net.add_host("pg", PG)
        self.nats = [self.net.add_host(f"nats{i + 1}", NATS_FIRST + i) for i in range(self.options.nats)]
        self.nodes = [self.net.add_host(f"n{i + 1}", NODE_FIRST + i) for i in range(self.options.nodes)]
        self._start_postgres()
        self._start_nats()
        self._seed()
        keys = ServiceKeys.generate().setting()
        for index, node in enumerate(self.nodes):
            self._start_node(node, self.nats[index % len(self.nats)], keys)
        for node in self.nodes:
            self._wait_node(node)
        asyncio.run(self.replicate_stream())
        self._start_haproxy()

    def _start_postgres(self) -> None:
        host, binaries = self.host("pg"), postgres_binaries()
        data = postgres_init(self.folder / "pg", binaries, str(self.net.subnet))
        command = postgres_command(binaries, data, host.address)
        server = self._spawn("pg", command, host=host)
        self._wait(server, "PostgreSQL", lambda: port_open(host.address, 5432), 30)

    def _start_nats(self) -> None:
        for host in self.nats:
            config = self.folder / f"{host.name}.conf"
            store = self.folder / host.name
            config.write_text(nats_config(host, self.nats, store, f"citadel-{self.id}"))
            self._spawn(host.name, [require("nats-server", "nats-server"), "-c", str(config)], host=host)
        for host in self.nats:
            self._wait(self.processes[host.name], "NATS", functools.partial(_has_meta_leader, host), 30)

    def _seed(self) -> None:
        parameters = SeedParameters(self.options.users, self.options.orders, self.options.items)
        self.seed = load_or_seed(parameters, f"{self.postgres_url}/cluster{self.id}")

    async def replicate_stream(self, timeout: float = 20.0) -> None:
        """Give the nodes' events stream a replica on every NATS server (up to ``REPLICAS``) and wait until each
        replica is current.

        A node creates the stream at start with its own configuration, which names no replica count: NATS takes
        that as one replica, even for a stream that had more. So this runs after the nodes have started, and again
        after any node restarts, until a setting of Citadel's carries the replica count.

        Raises:
            RuntimeError: the replicas were not current within ``timeout`` seconds.
        """
        import nats

        wanted = min(REPLICAS, len(self.nats))
        client = await nats.connect(f"nats://{self.nats[0].address}:{CLIENT_PORT}", connect_timeout=5)
        try:
            js = client.jetstream()
            info = await js.stream_info(STREAM)
            if info.config.num_replicas != wanted:
                info.config.num_replicas = wanted
                await js.update_stream(info.config)
            deadline = asyncio.get_running_loop().time() + timeout
            while asyncio.get_running_loop().time() < deadline:
                cluster = (await js.stream_info(STREAM)).cluster
                peers = (cluster.replicas or []) if cluster is not None else []
                if (
                    cluster is not None
                    and cluster.leader
                    and len(peers) == wanted - 1
                    and all(p.current for p in peers)
                ):
                    return
                await asyncio.sleep(0.3)
        finally:
            await client.close()
        raise RuntimeError(f"the events stream {STREAM} did not get {wanted} current replicas in {timeout:g} s")

    async def stream_replicas(self) -> tuple[int, str | None]:
        """The events stream's replica count and its leader, as the NATS cluster reports them."""
        import nats

        client = await nats.connect(f"nats://{self.nats[0].address}:{CLIENT_PORT}", connect_timeout=5)
        try:
            info = await client.jetstream().stream_info(STREAM)
        finally:
            await client.close()
        leader = info.cluster.leader if info.cluster is not None else None
        return int(info.config.num_replicas or 1), leader

    def _start_node(self, node: Host, seed_server: Host, service_keys: str) -> None:
        if self.seed is None:
            raise RuntimeError("seed the store before starting nodes")
        env = {k: v for k, v in dict(os.environ).items() if not k.startswith("CITADEL_")}
        env |= {
            "CITADEL_STORE": self.seed.store_url,
            "CITADEL_BROKER": f"nats://{seed_server.address}:{CLIENT_PORT}/{NAMESPACE}",
            "CITADEL_SERVICE_KEY": service_keys,
            "CITADEL_AUTH_SECRET": self.secret,
            "CITADEL_MASTER_KEY_FILE": str(self.seed.master_key_file.resolve()),
            "CITADEL_RATE_LIMIT_RATE": "1000000000",  # the limiter runs, but never refuses
            "CITADEL_RATE_LIMIT_BURST": "1000000000",
            "CITADEL_RATE_LIMIT_ADDRESS_RATE": "1000000000",  # every request comes from HAProxy's address
            "CITADEL_RATE_LIMIT_ADDRESS_BURST": "1000000000",
            "CITADEL_MAX_CONNECTIONS_PER_CLIENT": "0",
        }
        command = [str(CITADEL), "serve", "examples.shop:app", "--host", node.address, "--port", str(NODE_PORT)]
        self._spawn(node.name, command, host=node, env=env)

    def _wait_node(self, node: Host) -> None:
        self._wait(self.processes[node.name], "node", lambda: self.ready(node)[0] == 200, 60)

    def _wait(self, process: Process, what: str, ready: Callable[[], bool], timeout: float) -> None:
        """Wait until ``ready`` holds.

        Raises:
            RuntimeError: ``process`` exited or ``timeout`` seconds went by (with the end of its output).
        """
        try:
            wait_for(f"{what} {process.name}", ready, timeout, process.alive)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{process.tail()}") from exc

    def _start_haproxy(self) -> None:
        port = free_port()
        config = self.folder / "haproxy.cfg"
        config.write_text(
            haproxy_config(f"127.0.0.1:{port}", self.nodes, self.stats_socket, log=self.options.haproxy_log)
        )
        proxy = self._spawn("haproxy", [require("haproxy", "haproxy"), "-db", "-f", str(config)])
        self.url = f"http://127.0.0.1:{port}"
        self._wait(proxy, "HAProxy", lambda: get_json(f"{self.url}/health")[0] == 200, 15)

    def _spawn(
        self, name: str, command: list[str], *, host: Host | None = None, env: dict[str, str] | None = None
    ) -> Process:
        process = Process.start(name, command, self.folder / f"{name}.log", host=host, env=env or dict(os.environ))
        self.processes[name] = process
        return process

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start the server of host ``name`` again (it must have exited) and wait until it serves: PostgreSQL
        accepts connections, a NATS server sees a meta leader, a node's ``/ready`` answers 200.

        Raises:
            RuntimeError: it did not serve within ``timeout`` seconds (with its output).
        """
        process = self.processes[name] = self.processes[name].restarted()
        host = self.host(name)
        ready: Callable[[], bool] = lambda: self.ready(host)[0] == 200  # noqa: E731
        if name == "pg":
            ready = functools.partial(port_open, host.address, 5432)
        elif host in self.nats:
            ready = functools.partial(_has_meta_leader, host)
        self._wait(process, name, ready, timeout)

    # -- what the nodes report ---------------------------------------------------------------------------

    def ready(self, node: Host) -> tuple[int, dict[str, Any]]:
        """``/ready`` of ``node`` with the administrator's details (asked over the bridge, not HAProxy)."""
        return get_json(f"http://{node.address}:{NODE_PORT}/ready", self.admin_token)

    def lag(self) -> int:
        """The largest lag (events yet to process) of any consumer, the outbox relay included, that any node
        reports; -1 when a node does not answer."""
        worst = 0
        for node in self.nodes:
            with contextlib.suppress(OSError, ValueError):
                _, report = self.ready(node)
                consumers = report.get("projections", []) + report.get("process_managers", [])
                if consumers:
                    worst = max([worst, *(int(c["lag"]) for c in consumers)])
                    continue
            return -1
        return worst

    # -- taking it down ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every server (nodes first), remove the namespaces, the bridge, the run's files and the seed.

        Ctrl-C and SIGTERM wait while it runs (in the main thread), so that a second one cannot cut it short."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        with _signals_deferred():
            order = ["haproxy", *(n.name for n in self.nodes), *(n.name for n in self.nats), "pg"]
            for name in order + [n for n in self.processes if n not in order]:
                process = self.processes.get(name)
                if process is not None:
                    process.stop(signal.SIGINT if name != "haproxy" else signal.SIGTERM, timeout=10)
            self.net.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            for seeded in CACHE.glob(f"*-pg-cluster{self.id}"):
                shutil.rmtree(seeded, ignore_errors=True)

    def logs(self, chars: int = 1500) -> str:
        """The end of every server's output, for a failure's report."""
        return "\n".join(f"--- {name}\n{p.tail(chars)}" for name, p in self.processes.items())


def _sweep_stale_files() -> None:
    """Stop the processes and remove the files of rigs whose process is gone (a run killed before its cleanup):
    HAProxy runs outside the namespaces, and the run's folder and seed outlive it."""
    for folder in Path(tempfile.gettempdir()).glob("citadel-*-*"):
        rig = folder.name.split("-")[1]
        if not rig.isdigit() or alive(int(rig)):
            continue
        for pid in (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()):
            with contextlib.suppress(OSError):
                if str(folder) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        for seeded in CACHE.glob(f"*-pg-cluster{rig}"):
            shutil.rmtree(seeded, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (in the main thread; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _has_meta_leader(host: Host) -> bool:
    return nats_meta_leader(host) is not None


def check_requirements() -> None:
    """Fail at once, naming the fix, when the rig cannot run here.

    Raises:
        SystemExit: not root, or a program is missing.
    """
    if os.geteuid() != 0:
        raise SystemExit("the scale-out rig creates network namespaces: run it as root")
    require("ip", "iproute2")
    require("setpriv", "util-linux")
    require("nats-server", "nats-server")
    require("haproxy", "haproxy")
    postgres_binaries()
    run("ip", "netns", "list")
