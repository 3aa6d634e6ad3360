"""The faults the rig injects (imported by ``bench/cluster_faults.py``): each starts a fault on a running rig and
returns the function that ends it; ending it twice does nothing, so a run that fails half way can always heal.

* ``netem``: delay plus loss on the traffic between one node and PostgreSQL, both ways, as ``tc netem`` would
  add it (see ``netem`` for how, on a kernel without it);
* ``link_cut``: the node's bridge-side veth set down, then up;
* ``nats_leader``: the NATS server leading the events stream (JetStream's ``cluster.leader``) killed with SIGKILL,
  then started again on its own store;
* ``node_kill``: a node's process group killed with SIGKILL under load, a few milliseconds after a burst of
  orders sent straight to it (so its commits are in a batch in flight), then started again;
* ``postgres_restart``: PostgreSQL stopped (``SIGINT``, its fast shutdown: every connection cut) and started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cluster_net import run
from cluster_rig import Rig
from cluster_services import Process, require

__all__ = ["Fault", "link_cut", "nats_leader", "netem", "node_kill", "postgres_restart"]

Heal = Callable[[], None]
DELAY = Path(__file__).resolve().parent / "cluster_faults_delay.py"
QUEUE = 7
"""The netfilter queue of the delay (one per namespace, so the same number serves both ends)."""


@dataclass(frozen=True)
class Fault:
    """A fault of the table: its label, how long it lasts before it is healed, and how to start it."""

    label: str
    seconds: float
    start: Callable[[Rig], Heal]
    burst: str | None = None
    """A node to send a burst of orders to, straight, just before the fault starts (the node it kills)."""


def _once(heal: Heal) -> Heal:
    done = False

    def once() -> None:
        nonlocal done
        if not done:
            done = True
            heal()

    return once


def netem(node: str, delay_ms: int = 100, loss_percent: float = 5.0) -> Callable[[Rig], Heal]:
    """Delay and lose the packets between ``node`` and PostgreSQL, each way.

    This kernel's ``tc`` has no ``netem``, so each end's namespace sends the packets for the other end to a
    netfilter queue (``iptables ... -j NFQUEUE --queue-bypass``) served by ``bench/cluster_faults_delay.py``."""

    def start(rig: Rig) -> Heal:
        require("iptables", "iptables")
        ends = [(rig.host(node), rig.host("pg").address), (rig.host("pg"), rig.host(node).address)]
        rule = ["OUTPUT", "-p", "tcp", "-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"]
        handlers = []
        for host, peer in ends:
            command = [sys.executable, str(DELAY), "--queue", str(QUEUE), "--delay-ms", str(delay_ms)]
            command += ["--loss", f"{loss_percent:g}"]
            name = f"delay-{host.name}"
            handler = Process.start(name, command, rig.folder / f"{name}.log", host=host, env=dict(os.environ))
            rig.processes[name] = handler
            handlers.append(handler)
            run(*host.command("iptables", "-A", *rule[:1], "-d", f"{peer}/32", *rule[1:]))

        def heal() -> None:
            for host, peer in ends:
                run(*host.command("iptables", "-D", *rule[:1], "-d", f"{peer}/32", *rule[1:]))
            for handler in handlers:
                handler.stop(signal.SIGTERM, timeout=5)

        return _once(heal)

    return start


def link_cut(node: str) -> Callable[[Rig], Heal]:
    """Take ``node``'s link down: nothing reaches it or leaves it until it is up again."""

    def start(rig: Rig) -> Heal:
        run("ip", "link", "set", rig.link(node), "down")

        def heal() -> None:
            run("ip", "link", "set", rig.link(node), "up")

        return _once(heal)

    return start


def _replicate(rig: Rig, attempts: int = 3) -> None:
    """``rig.replicate_stream``, asked again when NATS does not answer: right after a server restarts, its
    JetStream API can time out while the cluster elects leaders."""
    for attempt in range(attempts):
        try:
            asyncio.run(rig.replicate_stream(timeout=30))
            return
        except Exception as exc:  # nats.errors.TimeoutError and the like; the last one is raised
            if attempt == attempts - 1:
                raise
            print(f"  the events stream's replicas: {exc!r}; asking again", flush=True)
            time.sleep(2)


def nats_leader(rig: Rig) -> Heal:
    """Kill the events stream's leader; the heal starts it again and waits until every replica is current."""
    _, leader = asyncio.run(rig.stream_replicas())
    if leader is None or leader not in rig.processes:
        raise RuntimeError(f"the events stream has no leader the rig knows ({leader!r})")
    print(f"  stream leader: {leader}", flush=True)
    rig.process(leader).stop(signal.SIGKILL, timeout=5)

    def heal() -> None:
        rig.restart(leader)
        _replicate(rig)

    return _once(heal)


def node_kill(node: str) -> Callable[[Rig], Heal]:
    """SIGKILL ``node``'s process group; the heal starts it again and waits until it is ready."""

    def start(rig: Rig) -> Heal:
        rig.process(node).stop(signal.SIGKILL, timeout=5)

        def heal() -> None:
            rig.restart(node)
            _replicate(rig)  # a node's start names no replica count (see there)

        return _once(heal)

    return start


def postgres_restart(rig: Rig) -> Heal:
    """Stop PostgreSQL with its fast shutdown and start it again at once (the heal waits for it)."""
    rig.process("pg").stop(signal.SIGINT, timeout=30)
    return _once(lambda: rig.restart("pg"))
