"""Runs a conformance case (``tests/http/corpus.py``) against a server that serves ``echo`` over TCP, and judges it.

``send_case`` writes a case on one connection and collects the answers (``h11`` parses them); ``echo`` answers
every request it is given with what it received; ``judge`` gives one verdict:

* ``pass``: a valid case's requests reach the app as gunicorn parses them, in order (header names compared
  without case, values exactly; trailers are not compared, ASGI does not carry them); an invalid case is refused
  with one of ``REFUSALS`` or a close without an answer, and never reaches the app;
* ``fail``: the app saw a different request, or one gunicorn refuses (the dangerous direction);
* ``deviation``: a valid case is refused (refusing what gunicorn accepts is safe);
* ``not applicable``: the expectation hinges on a gunicorn setting the server has no equivalent of.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, Literal

import h11

from tests.http.corpus import MAPPED_LIMITS, Case, CaseLimits, Expected

MAX_BODY = 1 << 20  # above every body of the corpus
REFUSALS = frozenset({400, 413, 414, 431, 501, 505})

Verdict = Literal["pass", "fail", "deviation", "not applicable"]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


@dataclass(frozen=True)
class Reply:
    """What came back on a case's connection."""

    responses: tuple[Response, ...]
    closed: bool
    """The server closed the connection (or reset it)."""
    error: str
    """Why the answers could not be parsed further, if they could not."""


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str


# -- the app and the client ---------------------------------------------------------------------------------


class EchoApp:
    """Answers every request 200 with a JSON description of what it received (method, raw_path, query_string,
    http_version, headers, body: latin-1 strings), and keeps the descriptions in ``seen``."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        seen = {
            "method": scope["method"],
            "raw_path": (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "http_version": scope["http_version"],
            "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]],
            "body": body.decode("latin-1"),
        }
        self.seen.append(seen)
        answer = json.dumps(seen).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


echo = EchoApp()
"""The app the servers started as processes import (``tests.http.conformance:echo``)."""


def citadel_options(limits: CaseLimits) -> dict[str, Any]:
    """``HttpServer`` options that hold Citadel's server to a case's gunicorn limits."""
    try:
        from citadel.http.server import Limits
    except ImportError:  # the server before its Limits has no request-line or header-count limit to set
        return {"max_body": MAX_BODY}
    values = {"max_body": MAX_BODY, "max_headers": limits.headers}
    if limits.request_line:
        values["max_request_line"] = limits.request_line
    return {"limits": Limits(**values)}


async def send_case(case: Case, host: str, port: int, *, idle: float = 2.0, deadline: float = 15.0) -> Reply:
    """Write the case on a new connection and read until the server closes it. The client ends its side once the
    answers it waits for are in, or after ``idle`` seconds without any (a server may be waiting for more)."""
    wanted = case.accepted_before + 1 if case.refused else len(case.requests)
    methods = [request.method for request in case.requests]
    reader, writer = await asyncio.open_connection(host, port)
    data, closed, ended = b"", False, False
    loop = asyncio.get_running_loop()
    stop = loop.time() + deadline
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(case.raw)
            await writer.drain()
        while loop.time() < stop:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), idle)
            except TimeoutError:
                chunk = None
            except ConnectionError:
                closed = True
                break
            if chunk == b"":
                closed = True
                break
            data += chunk or b""
            if chunk is None or len(parse_responses(data, False, methods)[0]) >= wanted:
                if ended and chunk is None:
                    break
                if not ended:
                    ended = True
                    with contextlib.suppress(OSError, RuntimeError):
                        writer.write_eof()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    responses, error = parse_responses(data, closed, methods)
    return Reply(tuple(responses), closed, error)


def parse_responses(data: bytes, closed: bool, methods: Sequence[str] = ()) -> tuple[list[Response], str]:
    """The complete responses in ``data`` (a connection's bytes, ``closed`` when it ended), and why parsing
    stopped early when the bytes are not HTTP."""
    connection = h11.Connection(h11.CLIENT)
    connection.receive_data(data)
    if closed:
        connection.receive_data(b"")
    found: list[Response] = []
    while True:  # h11 reads a response once it has sent a request: GET, or HEAD where the case sent one
        method = "HEAD" if methods[len(found) : len(found) + 1] == ["HEAD"] else "GET"
        connection.send(h11.Request(method=method, target="/", headers=[("host", "corpus")]))
        connection.send(h11.EndOfMessage())
        status, body = 0, bytearray()
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:  # a close before any byte of an answer is no parsing error
                return found, "" if status == 0 and not connection.trailing_data[0] else f"unparseable answer: {exc}"
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return found, ""
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                found.append(Response(status, bytes(body)))
                break
        if connection.their_state is not h11.DONE:
            return found, ""
        connection.start_next_cycle()


# -- verdicts -----------------------------------------------------------------------------------------------


def judge(
    case: Case, reply: Reply, *, mapped: frozenset[str] = MAPPED_LIMITS, seen: Sequence[Mapping[str, Any]] | None = None
) -> Outcome:
    """The verdict on ``reply`` for a server that can be set to the gunicorn limits in ``mapped``; ``seen`` is what
    the app saw, when it ran in this process (else the echoed answers tell)."""
    if case.gunicorn_only:
        return Outcome("not applicable", f"hinges on {case.gunicorn_only}")
    if case.needs - mapped:
        return Outcome("not applicable", f"hinges on gunicorn's {', '.join(sorted(case.needs - mapped))}")
    echoes = [_echoed(response) for response in reply.responses]
    if seen is None:
        seen = [echoed for echoed in echoes if echoed is not None]
    return _judge_refused(case, reply, seen) if case.refused else _judge_valid(case, reply, echoes, seen)


def _judge_valid(
    case: Case, reply: Reply, echoes: list[dict[str, Any] | None], seen: Sequence[Mapping[str, Any]]
) -> Outcome:
    count = len(case.requests)
    for index, expected in enumerate(case.requests):
        where = f"request {index + 1} of {count}"
        if index >= len(reply.responses):
            how = "closed without an answer" if reply.closed else "no answer"
            return Outcome("deviation", f"{where}: {how}{_error(reply)}")
        status, echoed = reply.responses[index].status, echoes[index]
        if echoed is None:
            if status in REFUSALS or 400 <= status < 500:
                return Outcome("deviation", f"{where}: refused with {status}")
            return Outcome("fail", f"{where}: answered {status}, which is not a refusal")
        difference = _difference(expected, echoed)
        if difference:
            return Outcome("fail", f"{where}: {difference}")
    if len(seen) > count:
        extra = seen[count]
        return Outcome("fail", f"the app saw {len(seen)} requests, gunicorn parses {count}; the next: {_line(extra)}")
    return Outcome("pass", f"{count} request(s) seen as gunicorn parses them")


def _judge_refused(case: Case, reply: Reply, seen: Sequence[Mapping[str, Any]]) -> Outcome:
    before = case.accepted_before
    if len(seen) > before:
        return Outcome("fail", f"the app saw the request gunicorn refuses: {_line(seen[before])}")
    if len(reply.responses) > before:
        status = reply.responses[before].status
        if status in REFUSALS:
            return Outcome("pass", f"refused with {status}")
        return Outcome("fail", f"answered {status}, which is not a refusal ({', '.join(map(str, sorted(REFUSALS)))})")
    if reply.closed:
        return Outcome("pass", f"closed without an answer{_error(reply)}")
    return Outcome("fail", f"neither refused nor closed{_error(reply)}")


def _echoed(response: Response) -> dict[str, Any] | None:
    if response.status != 200:
        return None
    try:
        echoed = json.loads(response.body)
    except ValueError:
        return None
    return echoed if isinstance(echoed, dict) and "method" in echoed else None


def _difference(expected: Expected, echoed: Mapping[str, Any]) -> str:
    """The first way the app's view differs from gunicorn's, or ""."""
    for field in ("method", "raw_path", "query_string", "http_version"):
        if echoed[field] != getattr(expected, field):
            return f"{field} {_short(echoed[field])} where gunicorn has {_short(getattr(expected, field))}"
    headers = [(name.lower(), value) for name, value in echoed["headers"]]
    for index, (got, want) in enumerate(zip_longest(headers, expected.headers)):
        if got != want:
            return f"header {index + 1} is {_short(got)} where gunicorn has {_short(want)}"
    body = echoed["body"].encode("latin-1")
    if body != expected.body:
        return f"body {_short(body)} where gunicorn has {_short(expected.body)}"
    return ""


def _line(echoed: Mapping[str, Any]) -> str:
    query = f"?{echoed['query_string']}" if echoed["query_string"] else ""
    return _short(f"{echoed['method']} {echoed['raw_path']}{query}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 70 else text[:60] + "...(" + str(len(text)) + " chars)"


def _error(reply: Reply) -> str:
    return f" ({reply.error})" if reply.error else ""
