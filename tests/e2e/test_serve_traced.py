"""A real ``citadel serve`` with ``CITADEL_TRACING=console``: each request over TCP is a SERVER span printed by
the SDK's console exporter, a valid ``traceparent`` is continued, and a malformed or oversized one is ignored (a
new trace) without failing the request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_process import ADMIN, environment, serving

pytestmark = pytest.mark.slow

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
HOSTILE = ("00-" + "f" * 8000, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz", "ff" + VALID[2:])


def printed_spans(output: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (indented JSON objects, between the server's other lines)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := output.find("{\n", at)) != -1:
        try:
            span, end = decoder.raw_decode(output, at)
        except json.JSONDecodeError:
            at += 1
            continue
        if isinstance(span, dict) and "context" in span:
            found.append(span)
        at = end
    return found


async def test_a_served_request_continues_a_valid_traceparent_and_ignores_a_hostile_one(tmp_path: Path) -> None:
    env = environment(tmp_path) | {"CITADEL_TRACING": "console"}
    with serving(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            for hostile in HOSTILE:
                missing = await client.get(
                    "/users/user", params={"user_id": "nobody"}, headers={"traceparent": hostile}
                )
                assert missing.status_code == 404, missing.text
            body = {"email": "ada@example.com", "name": "Ada"}
            registered = await client.post("/users/register-user", json=body, headers={"traceparent": VALID})
            assert registered.status_code == 200, registered.text
        output = server.log()
    served = [s for s in printed_spans(output) if s["kind"] == "SpanKind.SERVER"]
    hostile = [s for s in served if s["name"] == "GET /users/user"]
    assert len(hostile) == len(HOSTILE), output[-2000:]
    assert all(s["parent_id"] is None for s in hostile)
    assert all(s["attributes"]["http.response.status_code"] == 404 for s in hostile)
    (continued,) = [s for s in served if s["name"] == "POST /users/register-user"]
    assert continued["context"]["trace_id"] == f"0x{VALID.split('-')[1]}"
    assert continued["parent_id"] == f"0x{VALID.split('-')[2]}"
