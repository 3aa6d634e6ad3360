"""Structured logs: one line per request on ``citadel.http.access``, one ERROR line with the stack trace per
unexpected failure (in the log only, never in the answer), as text or JSON."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from mini import build

from citadel import Application, Command, CommandContext, Module
from citadel.config import load_settings
from citadel.errors import ConfigurationError
from citadel.http import create_asgi
from citadel.http.access_log import access_log
from citadel.http.auth import bearer_authenticator
from citadel.logs import JSONFormatter, TextFormatter, configure_logs, fields_of
from citadel.security import TokenVerifier, issue_token

SECRET = "a-secret-for-the-access-log-tests-long-enough"
ANN = {"authorization": f"Bearer {issue_token(SECRET, 'ann')}"}
EVERY_KEY = {"time", "level", "logger", "message", "method", "route", "status", "duration_s", "correlation_id", "actor"}


class Explode(Command, name="tools.Explode"):
    pass


async def explode(command: Explode, ctx: CommandContext) -> None:
    raise RuntimeError("the secret cause")


def with_tools(store: str) -> Application:
    """The mini application and a module whose one command fails unexpectedly."""
    app = build(store=store)
    tools = Module("tools", contract=[Explode], commands={Explode: explode})
    return Application([*app.modules.values(), tools], store=store)


@pytest.fixture
async def application(tmp_path: Path) -> AsyncIterator[Application]:
    app = with_tools(f"sqlite:///{tmp_path / 'app.db'}")
    async with app:
        yield app


def client_of(application: Application, **options: Any) -> httpx.AsyncClient:
    verifier = TokenVerifier(secret=SECRET)
    asgi = create_asgi(application, manage_lifecycle=False, authenticate=bearer_authenticator(verifier), **options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://shop")


@pytest.fixture
async def client(application: Application) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(application) as http:
        yield http


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="citadel")
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "citadel.http.access"]


async def test_a_command_logs_one_line_with_route_status_duration_actor_correlation_and_message_type(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture
) -> None:
    headers = ANN | {"x-correlation-id": "req-42"}
    response = await client.post("/orders/place-order", json={"customer": "c", "amount": 5}, headers=headers)
    assert response.status_code == 200
    (line,) = lines(logged)
    assert line.levelno == logging.INFO
    fields = fields_of(line)
    duration = fields.pop("duration_s")
    assert isinstance(duration, float)
    assert 0 < duration < 10
    assert fields == {
        "method": "POST",
        "route": "/orders/place-order",
        "status": 200,
        "correlation_id": "req-42",
        "actor": "ann",
        "message_type": "orders.PlaceOrder",
    }


async def test_a_request_without_a_correlation_id_logs_the_one_stored_with_its_events(
    client: httpx.AsyncClient, application: Application, logged: pytest.LogCaptureFixture
) -> None:
    response = await client.post("/orders/place-order", json={"customer": "c", "amount": 5})
    (record,) = await application.store.read_all(int(response.headers["citadel-position"]), 1)
    (line,) = lines(logged)
    assert fields_of(line)["correlation_id"] == record.correlation_id
    assert fields_of(line)["actor"] == "anonymous"


async def test_a_query_line_echoes_the_correlation_id_header(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture
) -> None:
    await client.get("/analytics/revenue", headers=ANN | {"x-correlation-id": "read-7"})
    (line,) = lines(logged)
    assert fields_of(line)["correlation_id"] == "read-7"
    assert fields_of(line)["message_type"] == "analytics.GetRevenue"
    assert fields_of(line)["route"] == "/analytics/revenue"


async def test_a_forged_correlation_id_is_not_logged_as_sent(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture
) -> None:
    await client.get("/analytics/revenue", headers={"x-correlation-id": 'x" level=ERROR actor=root'})
    (line,) = lines(logged)
    assert "level" not in fields_of(line)["correlation_id"]
    assert TextFormatter().format(line).count("level=") == 1


async def test_a_4xx_problem_logs_one_info_line_with_its_status_and_problem_type(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/orders/order", params={"order_id": "missing"})
    assert response.status_code == 404
    (line,) = lines(logged)
    assert line.levelno == logging.INFO
    assert fields_of(line)["status"] == 404
    assert fields_of(line)["problem"] == "urn:citadel:problem:not-found"
    assert [r for r in logged.records if r.levelno >= logging.WARNING] == []


async def test_an_unknown_route_logs_its_line_as_other(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture
) -> None:
    assert (await client.get("/nowhere")).status_code == 404
    (line,) = lines(logged)
    assert fields_of(line) == {
        "method": "GET",
        "route": "other",
        "status": 404,
        "problem": "urn:citadel:problem:not-found",
    }


async def test_an_unexpected_error_answers_500_without_trace_and_logs_it_with_its_stack_trace(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture
) -> None:
    response = await client.post("/tools/explode", json={}, headers=ANN | {"x-correlation-id": "boom-1"})
    assert response.status_code == 500
    assert response.json()["type"] == "urn:citadel:problem:internal-error"
    assert "Traceback" not in response.text
    assert "secret cause" not in response.text
    (failure,) = [r for r in logged.records if r.levelno >= logging.ERROR]
    assert failure.exc_info is not None
    assert fields_of(failure) == {
        "method": "POST",
        "route": "/tools/explode",
        "correlation_id": "boom-1",
        "actor": "ann",
        "message_type": "tools.Explode",
        "status": 500,
    }
    line = json.loads(JSONFormatter().format(failure))
    assert line["level"] == "ERROR"
    assert "Traceback" in line["exc"]
    assert "RuntimeError: the secret cause" in line["exc"]
    (request,) = lines(logged)
    assert fields_of(request)["status"] == 500


async def test_without_request_lines_failures_are_still_logged(
    application: Application, logged: pytest.LogCaptureFixture
) -> None:
    async with client_of(application, log_requests=False) as client:
        await client.post("/orders/place-order", json={"customer": "c", "amount": 5})
        await client.get("/nowhere")
        await client.post("/tools/explode", json={})
    assert lines(logged) == []
    (failure,) = [r for r in logged.records if r.levelno >= logging.ERROR]
    assert fields_of(failure)["route"] == "/tools/explode"


async def test_no_line_is_built_when_the_access_log_is_off(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> logging.LogRecord:
        raise AssertionError("a record was built")

    monkeypatch.setattr(access_log, "makeRecord", refuse)
    logged.set_level(logging.WARNING, logger="citadel.http.access")
    response = await client.post("/orders/place-order", json={"customer": "c", "amount": 5})
    assert response.status_code == 200
    assert lines(logged) == []


async def test_a_json_line_parses_and_has_every_key(
    client: httpx.AsyncClient, logged: pytest.LogCaptureFixture
) -> None:
    await client.post("/orders/place-order", json={"customer": "c", "amount": 5}, headers=ANN)
    (line,) = lines(logged)
    parsed = json.loads(JSONFormatter().format(line))
    assert EVERY_KEY | {"message_type"} <= set(parsed)
    assert parsed["logger"] == "citadel.http.access"
    assert parsed["message"] == "POST /orders/place-order 200"
    written = datetime.fromisoformat(parsed["time"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - written).total_seconds()) < 60


def test_a_text_line_is_one_line_of_key_value_pairs_with_odd_values_quoted() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord("citadel.x", logging.ERROR, "", 0, "a message", (), sys.exc_info())
    record.citadel = {"actor": 'ann\nlevel=INFO "x"', "status": 500, "duration_s": 0.000093}
    text = TextFormatter().format(record)
    assert "\n" not in text
    expected = ' level=ERROR logger=citadel.x message="a message" actor="ann\\nlevel=INFO \\"x\\"" status=500'
    assert f"{expected} duration_s=0.000093 exc=" in text
    assert 'exc="Traceback' in text


def test_configure_logs_writes_the_chosen_format_and_replaces_its_own_handler() -> None:
    root = logging.getLogger()
    level = root.level
    first, second = io.StringIO(), io.StringIO()
    handlers = [configure_logs(log_format="text", stream=first), configure_logs(log_format="json", stream=second)]
    try:
        logging.getLogger("citadel.test").warning("hello %s", "there")
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "hello there"


def test_an_unknown_log_format_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="log_format"):
        load_settings(environ={"CITADEL_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="xml"):
        configure_logs(log_format="xml")  # type: ignore[arg-type]


def test_the_log_settings_come_from_the_environment() -> None:
    settings = load_settings(environ={"CITADEL_LOG_FORMAT": "json", "CITADEL_LOG_REQUESTS": "false"})
    assert (settings.log_format, settings.log_requests) == ("json", False)
