"""Tests against the real NATS server (127.0.0.1:4222, JetStream on); each test has a namespace of its own, and
its services share one set of generated service keys."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import nats
import pytest

from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys

NATS = "nats://127.0.0.1:4222"


@pytest.fixture
async def broker_url() -> AsyncIterator[str]:
    """A broker URL whose subjects and events stream belong to this test alone (deleted afterwards)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield f"{NATS}/{name}"
    connection = await nats.connect(NATS)
    try:
        js = connection.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(NatsBroker(f"{NATS}/{name}").stream)
    finally:
        await connection.close()


@pytest.fixture
def keys() -> ServiceKeys:
    """The service keys the services of this test share."""
    return ServiceKeys.generate()
