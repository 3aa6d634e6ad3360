"""The storage backends the tests run on, and how to give each test a clean one.

PostgreSQL tests use a database of their own (``citadel_test_<pid>`` by default, ``CITADEL_TEST_POSTGRES`` to
choose one), created when missing and dropped at the end of the session; every schema in it is dropped
before each test, so never point it at real data.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

# One database per test session, so that test runs in parallel (or a crashed one) never meet.
POSTGRES = os.environ.get("CITADEL_TEST_POSTGRES", f"postgresql://postgres@127.0.0.1:5432/citadel_test_{os.getpid()}")
BACKENDS = ("sqlite", "postgres")


async def reset_postgres(dsn: str = POSTGRES) -> None:
    """Create the test database when missing, and drop every schema a test may have created in it."""
    base, _, name = dsn.rpartition("/")
    try:
        connection = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        connection = await asyncpg.connect(dsn)
    try:
        schemas = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' "
            "AND nspname NOT IN ('information_schema', 'public')"
        )
        for row in schemas:
            await connection.execute(f'DROP SCHEMA "{row[0]}" CASCADE')
    finally:
        await connection.close()


async def clean_store_url(backend: str, directory: Path) -> str:
    """A store URL for a fresh, empty store of ``backend``."""
    if backend == "postgres":
        await reset_postgres()
        return POSTGRES
    return f"sqlite:///{directory / 'app.db'}"


async def drop_postgres(dsn: str = POSTGRES) -> None:
    """Drop the test database (at the end of a session)."""
    base, _, name = dsn.rpartition("/")
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
