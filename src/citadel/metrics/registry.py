"""The metric objects of one process, named as Prometheus recommends (base units, ``_total`` counters) and
labelled only by what the application itself bounds: its routes, message types, consumers and refusal reasons.

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before they fork, see ``multiprocess``) each
process writes its values to files in that directory and a scrape sums them (``exposition``). How a gauge
combines across processes is its ``multiprocess_mode``:

* ``mostrecent`` for what any process can read from the store at scrape time (lag, dead letters): the value the
  last scrape set;
* ``livesum`` for ``citadel_consumer_lease_held``: each live process reports the leases it holds, so a value is
  how many processes of this node hold that consumer's lease (0 or 1).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["MULTIPROC_ENV", "Metrics", "exposition", "metrics", "multiprocess_dir"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where the processes of a node write their values (set by ``citadel serve`` with several workers)."""

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Every metric Citadel records, registered in a registry of its own (the application's own metrics stay
    in ``prometheus_client``'s default registry, untouched)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "citadel_http_requests",
            "HTTP requests answered, by route template (other: unknown paths and refusals before routing), "
            "method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.command_duration = Histogram(
            "citadel_command_duration_seconds", "Seconds to handle a command, by type.", ["type"], registry=r
        )
        self.query_duration = Histogram(
            "citadel_query_duration_seconds", "Seconds to answer a query, by type.", ["type"], registry=r
        )
        self.events_appended = Counter("citadel_events_appended", "Events appended to the log.", registry=r)
        self.commit_batch_size = Histogram(
            "citadel_commit_batch_size",
            "Commits written together in one transaction.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.commit_duration = Histogram(
            "citadel_commit_duration_seconds", "Seconds to write and commit one batch.", registry=r
        )
        self.consumer_lag = Gauge(
            "citadel_consumer_lag_events",
            "Events in the log that a consumer has yet to process (read at scrape time).",
            ["consumer"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.consumer_processed = Counter(
            "citadel_consumer_processed_events",
            "Events a consumer has processed in this node (its rate is the processing rate).",
            ["consumer"],
            registry=r,
        )
        self.consumer_lease = Gauge(
            "citadel_consumer_lease_held",
            "1 while a process of this node holds the consumer's lease.",
            ["consumer"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.dead_letters = Gauge(
            "citadel_dead_letters",
            "Events parked as dead letters, waiting for an operator (read at scrape time).",
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.rate_limit_refusals = Counter(
            "citadel_rate_limit_refusals",
            "Requests refused with 429, by bucket: address (before authentication) or caller.",
            ["scope"],
            registry=r,
        )
        self.signature_refusals = Counter(
            "citadel_signature_refusals",
            "Messages between services refused as unverified, by reason.",
            ["reason"],
            registry=r,
        )
        self.relay_published = Counter(
            "citadel_relay_published", "Messages the outbox relay published to the broker.", registry=r
        )
        self.inbox_imported = Counter(
            "citadel_inbox_imported", "Events of other services imported into this service's log.", registry=r
        )


_by_process: dict[int, Metrics] = {}


def multiprocess_dir() -> str | None:
    """The directory the node's processes share their values in, or None in single-process mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def metrics() -> Metrics:
    """Return this process's metrics, made on first use (a forked process makes its own)."""
    pid = os.getpid()
    found = _by_process.get(pid)
    if found is None:
        if multiprocess_dir() is not None and values.ValueClass is values.MutexValue:
            # prometheus_client picks its value class when it is imported, which may be before the server
            # chose the directory: pick again, before any metric of ours exists in this process.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        _by_process.clear()
        found = _by_process[pid] = Metrics()
    return found


def exposition(recorded: Metrics) -> bytes:
    """The text exposition of ``recorded``, summed over the node's processes in multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(recorded.registry)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
