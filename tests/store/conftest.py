"""The backend-agnostic store fixtures: every test in this folder runs against every backend of ``suite``."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from suite import BACKENDS, StoreFactory, open_backend

from citadel.store.base import EventStore


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[EventStore]:
    async with open_backend(backend, tmp_path) as opened:
        yield opened


@pytest.fixture
def store_factory(backend: str) -> StoreFactory:
    """Opens a fresh, empty store per call (for property tests that need one per example)."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[EventStore]:
        with tempfile.TemporaryDirectory(prefix="citadel-store-") as directory:
            async with open_backend(backend, Path(directory)) as opened:
                yield opened

    return factory
