"""Header values that are stored with every event: ``X-Correlation-Id`` and ``Idempotency-Key``.

Only 1 to 128 characters of ``A-Z a-z 0-9 . _ : -`` are taken; a correlation id otherwise is replaced by a fresh
one, an idempotency key otherwise is refused (the client relies on it, so it must learn).
"""

from __future__ import annotations

import re

import httpx
import pytest

from citadel import Application
from citadel.store.base import RecordedEvent

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ALLOWED = "Az09._:-" * 16  # 128 characters, every kind allowed


async def place(client: httpx.AsyncClient, headers: dict[str, bytes]) -> httpx.Response:
    return await client.post("/orders/place-order", json={"customer": "ann", "amount": 5}, headers=headers)


async def placed_event(application: Application, response: httpx.Response) -> RecordedEvent:
    assert response.status_code == 200, response.text
    position = int(response.headers["citadel-position"])
    (record,) = await application.store.read_all(position, 1)
    assert record.type == "orders.OrderPlaced"
    return record


async def test_a_correlation_id_of_allowed_characters_is_recorded_as_sent(
    client: httpx.AsyncClient, application: Application
) -> None:
    record = await placed_event(application, await place(client, {"x-correlation-id": ALLOWED.encode()}))
    assert record.correlation_id == ALLOWED


@pytest.mark.parametrize(
    "sent",
    [b"x" * (1 << 20), ALLOWED.encode() + b"x", b"", b"a b", b"req-1\r\nforged: line", b"caf\xc3\xa9", b"a/b", b"{}"],
    ids=["1 MiB", "129 characters", "empty", "space", "line break", "non-ASCII", "slash", "braces"],
)
async def test_any_other_correlation_id_is_replaced_by_a_fresh_id_and_never_stored(
    client: httpx.AsyncClient, application: Application, sent: bytes
) -> None:
    record = await placed_event(application, await place(client, {"x-correlation-id": sent}))
    assert record.correlation_id is not None
    assert UUID.fullmatch(record.correlation_id), record.correlation_id[:200]


async def test_an_idempotency_key_of_allowed_characters_makes_a_retry_write_nothing(
    client: httpx.AsyncClient, application: Application
) -> None:
    first = await place(client, {"idempotency-key": ALLOWED.encode()})
    head = await application.store.head_position()
    again = await place(client, {"idempotency-key": ALLOWED.encode()})
    assert again.json() == first.json()
    assert await application.store.head_position() == head


@pytest.mark.parametrize(
    "key",
    [b"k" * (1 << 20), ALLOWED.encode() + b"k", b"", b"a b", b"k\tk", b"caf\xc3\xa9", b"a/b", b"a@b"],
    ids=["1 MiB", "129 characters", "empty", "space", "tab", "non-ASCII", "slash", "at sign"],
)
async def test_any_other_idempotency_key_is_refused_with_400_and_writes_nothing(
    client: httpx.AsyncClient, application: Application, key: bytes
) -> None:
    head = await application.store.head_position()
    response = await place(client, {"idempotency-key": key})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:citadel:problem:bad-idempotency-key"
    assert await application.store.head_position() == head
