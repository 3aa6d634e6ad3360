"""Fixtures shared by the application-level tests: every one runs on each storage backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import BACKENDS, clean_store_url


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty store, once per backend."""
    return await clean_store_url(str(request.param), tmp_path)
