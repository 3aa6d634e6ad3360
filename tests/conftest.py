"""Fixtures shared by the application-level tests: every one runs on each storage backend."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from citadel.tracing import use_provider
from tests.backends import BACKENDS, POSTGRES, clean_store_url, drop_postgres


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty store, once per backend."""
    return await clean_store_url(str(request.param), tmp_path)


@pytest.fixture(scope="session", autouse=True)
def drop_the_test_database_at_the_end() -> Iterator[None]:
    yield
    if "CITADEL_TEST_POSTGRES" not in os.environ:  # a database we named: ours to drop
        asyncio.run(drop_postgres(POSTGRES))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Citadel's spans, recorded in memory by the OpenTelemetry SDK for the test (tracing is off again after)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_provider(provider)
    try:
        yield exporter
    finally:
        use_provider(None)
        provider.shutdown()
