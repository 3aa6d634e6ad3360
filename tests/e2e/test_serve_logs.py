"""A real ``citadel serve`` with ``CITADEL_LOG_FORMAT=json``: everything it writes is JSON lines, one per request
from each worker, a failure's stack trace in the log and not in the answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_process import ADMIN, environment, serving

pytestmark = pytest.mark.slow


def json_lines(output: Path) -> list[dict[str, Any]]:
    found = []
    for line in output.read_text().splitlines():
        if line.strip():
            parsed = json.loads(line)  # fails the test on any line that is not JSON
            assert isinstance(parsed, dict), line
            found.append(parsed)
    return found


async def test_every_line_of_a_server_with_json_logs_is_a_json_object(tmp_path: Path) -> None:
    env = environment(tmp_path) | {"CITADEL_LOG_FORMAT": "json"}
    with serving(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", workers=2, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as client:
            for n in range(20):  # over new connections, so that both workers are likely to answer some
                headers = {"x-correlation-id": f"reg-{n}", "connection": "close"}
                body = {"email": f"u{n}@example.com", "name": "U"}
                assert (await client.post("/users/register-user", json=body, headers=headers)).status_code == 200
            missing = await client.get("/nowhere")
            assert missing.status_code == 404
            assert "Traceback" not in missing.text
        output = server.output
    lines = json_lines(output)
    assert lines, "the server wrote nothing"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    requests = [line for line in lines if line["logger"] == "citadel.http.access"]
    registered = {line["correlation_id"]: line for line in requests if line["route"] == "/users/register-user"}
    assert set(registered) == {f"reg-{n}" for n in range(20)}
    assert {line["message_type"] for line in registered.values()} == {"users.RegisterUser"}
    assert {line["actor"] for line in registered.values()} == {"serve-admin"}
    assert all(line["status"] == 200 and line["duration_s"] > 0 for line in registered.values())
    assert [line["status"] for line in requests if line["route"] == "other"] == [404]
