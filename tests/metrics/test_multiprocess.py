"""Forked processes share their metrics through the directory ``shared_values`` makes: a scrape sums their
counters, and a process that has exited keeps its counts but no longer holds leases."""

from __future__ import annotations

import os
from pathlib import Path

from scraping import parse, value

from citadel.metrics import exposition, metrics
from citadel.metrics.multiprocess import process_exited, shared_values
from citadel.metrics.registry import MULTIPROC_ENV


def record_in_child(requests: int, lease: int) -> int:
    """Fork a process that counts ``requests`` and sets a lease gauge, then exits; return its id."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            recorded = metrics()
            recorded.http_requests.labels("/x", "GET", "200").inc(requests)
            recorded.consumer_lease.labels("billing.open_invoices").set(lease)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return pid


def test_a_scrape_sums_the_counts_of_every_forked_process_and_forgets_the_leases_of_exited_ones() -> None:
    with shared_values() as path:
        first = record_in_child(3, 1)
        record_in_child(4, 0)
        both = parse(exposition(metrics()).decode())
        process_exited(first)
        after = parse(exposition(metrics()).decode())
    assert value(both, "citadel_http_requests_total", route="/x", method="GET", status="200") == 7
    assert value(both, "citadel_consumer_lease_held", consumer="billing.open_invoices") == 1
    assert value(after, "citadel_http_requests_total", route="/x", method="GET", status="200") == 7
    assert value(after, "citadel_consumer_lease_held", consumer="billing.open_invoices") == 0
    assert not Path(path).exists()
    assert MULTIPROC_ENV not in os.environ


def test_a_directory_the_environment_names_is_used_and_kept(tmp_path: Path) -> None:
    os.environ[MULTIPROC_ENV] = str(tmp_path)
    try:
        with shared_values() as path:
            assert path == str(tmp_path)
        assert tmp_path.exists()
        assert os.environ[MULTIPROC_ENV] == str(tmp_path)
    finally:
        del os.environ[MULTIPROC_ENV]
