"""Fixtures shared by the application-level tests: every one runs on each storage backend."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
