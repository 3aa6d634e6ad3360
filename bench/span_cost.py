"""What a request's spans cost in process, with no server around them: the HTTP span, the bus's ``dispatch`` and
the handler's ``handle``, nested as one query makes them, with tracing off, with the SDK configured but every
request sampled out (the root span alone is started), and sampled out with the inner spans started anyway (how
it was before they were skipped). Prints microseconds per request.

Usage: ``python bench/span_cost.py [--requests 50000] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import citadel.tracing.spans as spans
from citadel.tracing import command_span, handler_span, http_server_span, use_provider


def request() -> None:
    with (
        http_server_span("POST", "/users/get-user", path="/users/get-user", scheme="http"),
        command_span("query", "users.GetUser"),
        handler_span("users.GetUser", "users"),
    ):
        pass


def per_request(requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        request()
    return (time.perf_counter() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    skipped: Callable[[], bool] = spans._unsampled
    print("| round | tracing off | sampled out | sampled out, inner spans started |")
    print("|---:|---:|---:|---:|")
    for round_ in range(1, args.rounds + 1):
        use_provider(None)
        off = per_request(args.requests)
        use_provider(TracerProvider(sampler=ALWAYS_OFF))
        dropped = per_request(args.requests)
        spans._unsampled = lambda: False  # type: ignore[assignment]
        started = per_request(args.requests)
        spans._unsampled = skipped  # type: ignore[assignment]
        use_provider(None)
        print(f"| {round_} | {off:.1f} µs | {dropped:.1f} µs | {started:.1f} µs |")


if __name__ == "__main__":
    main()
