"""The scale-out rig's network (imported by ``bench/cluster.py``): a Linux bridge in the root namespace and one
network namespace per host, each joined to the bridge by a veth pair, on a private /24 of its own.

Every name carries the rig's id (the process id of the run that made it), so two runs never collide and a run
killed before its cleanup can be swept later (``sweep_stale``): namespaces ``citadel-<id>-<host>``, bridge
``cz<id>br``, host-side veth ends ``cz<id>h<n>``. The root namespace holds the bridge's address (``.1``), so
the rig, HAProxy and the load generator reach every host over the bridge and nothing else does.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Host", "Network", "alive", "leftovers", "sweep_stale"]

PREFIX = "citadel-"
_SUBNETS = [f"10.77.{third}.0/24" for third in range(10, 250)]
_NAMESPACE = re.compile(r"^citadel-(\d+)-")
_DEVICE = re.compile(r"^cz(\d+)(br|h\d+)$")


def run(*command: str) -> str:
    """Run a command; return its output.

    Raises:
        RuntimeError: it failed (with its output).
    """
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Host:
    """A network namespace on the bridge: its name, its address, and the bridge-side end of its link."""

    name: str
    namespace: str
    address: str
    link: str
    """The veth end in the root namespace (enslaved to the bridge): where a fault on this host's link goes."""

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Network:
    """The bridge and its hosts; ``close`` removes all of it, and kills what still runs in the namespaces."""

    rig: int = field(default_factory=os.getpid)
    subnet: ipaddress.IPv4Network = field(init=False)
    bridge: str = field(init=False)
    hosts: dict[str, Host] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bridge = f"cz{self.rig}br"
        self.subnet = _free_subnet(self.rig)

    @property
    def gateway(self) -> str:
        """The bridge's own address, in the root namespace."""
        return str(self.subnet.network_address + 1)

    def open(self) -> None:
        """Create the bridge and give the root namespace its address on it."""
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")

    def add_host(self, name: str, number: int) -> Host:
        """A namespace ``citadel-<rig>-<name>`` at the subnet's address ``number``, linked to the bridge."""
        host = Host(
            name, f"{PREFIX}{self.rig}-{name}", str(self.subnet.network_address + number), f"cz{self.rig}h{number}"
        )
        self.hosts[name] = host
        peer = f"{host.link}p"
        run("ip", "netns", "add", host.namespace)
        run("ip", "link", "add", host.link, "type", "veth", "peer", "name", peer)
        run("ip", "link", "set", peer, "netns", host.namespace)
        run("ip", "link", "set", host.link, "master", self.bridge, "up")
        inside = host.command
        run(*inside("ip", "link", "set", peer, "name", "eth0"))
        run(*inside("ip", "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0"))
        run(*inside("ip", "link", "set", "eth0", "up"))
        run(*inside("ip", "link", "set", "lo", "up"))
        run(*inside("ip", "route", "add", "default", "via", self.gateway))
        return host

    def close(self) -> None:
        """Kill what runs in the namespaces, then delete them and the bridge (each step even if another failed)."""
        for host in self.hosts.values():
            _remove_namespace(host.namespace)
        with contextlib.suppress(RuntimeError):
            run("ip", "link", "del", self.bridge)
        self.hosts.clear()


def _free_subnet(rig: int) -> ipaddress.IPv4Network:
    """A /24 of 10.77.0.0/16 that no address or route on this machine uses, starting from one the rig's id picks.

    Raises:
        RuntimeError: every candidate is taken.
    """
    used = run("ip", "-4", "addr") + run("ip", "-4", "route")
    start = rig % len(_SUBNETS)
    for candidate in _SUBNETS[start:] + _SUBNETS[:start]:
        if candidate.rsplit(".", 1)[0] + "." not in used:
            return ipaddress.IPv4Network(candidate)
    raise RuntimeError("no free /24 in 10.77.0.0/16 for the rig: remove old bridges (ip link show type bridge)")


def _remove_namespace(namespace: str) -> None:
    with contextlib.suppress(RuntimeError):
        for _ in range(50):
            pids = [int(p) for p in run("ip", "netns", "pids", namespace).split()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        run("ip", "netns", "del", namespace)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def leftovers(rig: int) -> list[str]:
    """What of rig ``rig`` still exists: its namespaces and network devices (empty once it is cleaned up)."""
    found = [ns.split()[0] for ns in run("ip", "netns", "list").splitlines() if ns.startswith(f"{PREFIX}{rig}-")]
    for line in run("ip", "-o", "link", "show").splitlines():
        device = line.split(":")[1].strip().split("@")[0]
        match = _DEVICE.match(device)
        if match and int(match.group(1)) == rig:
            found.append(device)
    return found


def sweep_stale() -> list[str]:
    """Remove the namespaces and devices of rigs whose process is gone (a run killed before its cleanup);
    return what was removed."""
    removed = []
    for line in run("ip", "netns", "list").splitlines():
        namespace = line.split()[0] if line.strip() else ""
        match = _NAMESPACE.match(namespace)
        if match and not alive(int(match.group(1))):
            _remove_namespace(namespace)
            removed.append(namespace)
    for line in run("ip", "-o", "link", "show").splitlines():
        device = line.split(":")[1].strip().split("@")[0]
        match = _DEVICE.match(device)
        if match and not alive(int(match.group(1))):
            with contextlib.suppress(RuntimeError):
                run("ip", "link", "del", device)
                removed.append(device)
    return removed
