"""The scale-out rig (bench/cluster.py) under a short load: two nodes in network namespaces on PostgreSQL and a
NATS cluster, behind HAProxy, driven by the shop's virtual users; then taken down.

The rig runs once for the module; each test checks one thing it must have shown. It needs root, iproute2,
HAProxy, nats-server and PostgreSQL's server binaries: without one, every test fails, naming the package.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from cluster import ClusterRun, measure, print_table  # noqa: E402
from cluster_net import alive, leftovers  # noqa: E402
from cluster_rig import REPLICAS, Rig, RigOptions  # noqa: E402

pytestmark = pytest.mark.slow

NODES = 2
CONNECTIONS = 200
"""Virtual users: each sends about one request a second."""


@dataclass
class Finished:
    """A run of the rig, after its close."""

    rig: Rig
    result: ClusterRun
    pids: list[int]
    """Every server process the rig started."""


@pytest.fixture(scope="module")
def finished() -> Finished:
    try:
        rig = Rig(RigOptions(nodes=NODES, users=200, orders=800))
        with rig:
            result = measure(rig, CONNECTIONS, warmup=2.0, duration=10.0, catch_up=30.0)
            pids = [p.pid for p in rig.processes.values()]
    except SystemExit as exc:  # a missing requirement: fail with the fix, never skip
        pytest.fail(str(exc))
    print_table(result)
    return Finished(rig, result, pids)


def _processes_naming(text: str) -> list[str]:
    """The command lines of running processes that contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in command:
                found.append(command)
    return found


def test_every_node_answers_through_haproxy(finished: Finished) -> None:
    assert len(finished.result.per_node) == NODES
    for node in finished.result.per_node:
        assert node.answers > 0, f"{node.name} answered nothing through HAProxy"
    # HAProxy's count and the load generator's are read a moment apart: they agree within a few percent
    answered, requests = sum(n.answers for n in finished.result.per_node), finished.result.requests
    assert requests > CONNECTIONS
    assert abs(answered - requests) <= 0.05 * requests


def test_no_request_gets_a_server_error_or_goes_unanswered(finished: Finished) -> None:
    assert finished.result.statuses.get("5xx", 0) == 0
    assert [n.status_5xx for n in finished.result.per_node] == [0] * NODES
    assert finished.result.failed == 0, finished.result.errors


def test_consumers_catch_up_once_the_load_stops(finished: Finished) -> None:
    assert finished.result.catch_up_seconds is not None, f"lag {finished.result.lag_at_end} at the window's end"


def test_the_events_stream_has_a_replica_on_every_nats_server(finished: Finished) -> None:
    assert finished.result.replicas == REPLICAS


def test_the_rig_leaves_no_namespace_device_process_or_file(finished: Finished) -> None:
    rig = finished.rig
    assert leftovers(rig.id) == []
    assert [pid for pid in finished.pids if alive(pid)] == []
    assert _processes_naming(str(rig.folder)) == []
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"citadel-{rig.id}-" not in namespaces
    assert not rig.folder.exists()
    assert rig.seed is not None
    assert not rig.seed.folder.exists()
