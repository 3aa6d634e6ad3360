"""In-process rate limits hold per node, not per worker: ``citadel serve --workers 2`` without Redis lets one
caller's burst through once, however its connections are spread over the workers (Citadel's server: buckets in
memory the workers share; granian: each worker takes its share of the rule)."""

from __future__ import annotations

import pytest
from hostile import Served, read_all, serving, source, status_of

pytestmark = pytest.mark.slow

BURST = 10
LIMITS = {
    "CITADEL_RATE_LIMIT_RATE": "0.001",
    "CITADEL_RATE_LIMIT_BURST": str(BURST),
    "CITADEL_RATE_LIMIT_ADDRESS_RATE": "0.001",
    "CITADEL_RATE_LIMIT_ADDRESS_BURST": str(4 * BURST),
}


def statuses_on_new_connections(served: Served, address: str, count: int) -> list[int]:
    """Anonymous requests from ``address``, each on a connection of its own (the kernel spreads new connections
    over every worker's listening sockets)."""
    found = []
    for _ in range(count):
        with served.connect(address) as sock:
            sock.sendall(b"GET /content/item?content_id=none HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n")
            found.append(status_of(read_all(sock)))
    return found


@pytest.mark.parametrize("server", ["citadel", "granian"])
def test_two_workers_let_one_callers_burst_through_once(tmp_path_factory: pytest.TempPathFactory, server: str) -> None:
    folder = tmp_path_factory.mktemp(f"per-node-{server}")
    with serving(folder, "--workers", "2", "--server", server, **LIMITS) as served:
        statuses = statuses_on_new_connections(served, source(), 3 * BURST)
    allowed = [s for s in statuses if s != 429]
    assert set(allowed) <= {404}, statuses
    if server == "citadel":  # one table of buckets for the node: exactly the burst
        assert len(allowed) == BURST, statuses
    else:  # each worker holds half of the burst: never more than the burst in all
        assert BURST // 2 <= len(allowed) <= BURST, statuses


def test_the_address_bucket_holds_per_node_before_authentication(tmp_path_factory: pytest.TempPathFactory) -> None:
    with serving(tmp_path_factory.mktemp("per-node-address"), "--workers", "2", **LIMITS) as served:
        address = source()
        answers = []
        for _ in range(6 * BURST):
            with served.connect(address) as sock:
                sock.sendall(
                    b"GET /health HTTP/1.1\r\nhost: shop\r\nauthorization: Bearer bad\r\nconnection: close\r\n\r\n"
                )
                answers.append(status_of(read_all(sock)))
    assert answers.count(200) == 4 * BURST, answers  # /health reads no token: only the address's bucket counts
    assert answers.count(429) == 2 * BURST
