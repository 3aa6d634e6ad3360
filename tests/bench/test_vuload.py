"""The benchmark's load generator (bench/vu/vuload.c) counts what a server really answered.

A small HTTP server here answers GETs with a Content-Length body, POSTs with a chunked body, gives 404 to
content items, and closes every seventh connection after its answer; vuload drives it with the shop's virtual
users from a small data file, and its report must match what the server saw.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from machine import ensure_vuload  # noqa: E402


class _Server(asyncio.Protocol):
    seen: Counter[str] = Counter()
    answers: Counter[int] = Counter()
    connections = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        type(self).connections += 1
        self.number = type(self).connections

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, target, _ = lines[0].split(" ")
            headers = dict(line.split(": ", 1) for line in lines[1:])
            length = int(headers.get("Content-Length", "0"))
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            path = target.partition("?")[0]
            self.seen[path] += 1
            if body:
                json.loads(body)  # every body vuload sends is JSON
            self._answer(method, path)

    def _answer(self, method: str, path: str) -> None:
        closing = self.number % 7 == 0
        extra = b"Connection: close\r\n" if closing else b""
        if path == "/content/item":
            status, payload = 404, b'{"title":"not found"}'
        else:
            status, payload = (200, b'{"ok":true}') if method == "GET" else (201, b'{"id":"x"}' * 40)
        self.answers[status] += 1
        if method == "POST":
            chunk = b"%x\r\n%b\r\n" % (len(payload), payload)
            self.transport.write(
                b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n%b\r\n%b0\r\n\r\n" % (status, extra, chunk)
            )
        else:
            head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%b\r\n" % (status, len(payload), extra)
            self.transport.write(head + payload)
        if closing:
            self.transport.close()


def _data_file(path: Path) -> Path:
    lines = ["C item-1", "C item-2"]
    lines += [f"U user-{u} token-{u} order-{u}-a,order-{u}-b" for u in range(6)]
    lines += [f"I {u} invoice-{u}-{i} 12.5" for u in range(6) for i in range(50)]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_vuload_reports_what_the_server_answered(tmp_path: Path) -> None:
    binary = ensure_vuload(ROOT)
    _Server.seen, _Server.answers, _Server.connections = Counter(), Counter(), 0
    server = await asyncio.get_running_loop().create_server(_Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    command = [binary, "-t", "2", "-c", "12", "-d", "4", "--timeout", "2", f"http://127.0.0.1:{port}"]
    command += [str(_data_file(tmp_path / "data.txt")), "test"]
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await process.communicate()
    server.close()
    assert process.returncode == 0, err.decode()
    line = next(ln for ln in out.decode().splitlines() if ln.startswith("VU-RESULT "))
    report = json.loads(line.removeprefix("VU-RESULT "))

    answered = sum(_Server.answers.values())
    assert report["requests"] == answered > 20  # 12 users, one request per ~1 s each, for 4 s
    assert report["by_status"] == {str(status): n for status, n in _Server.answers.items()}
    assert report["statuses"]["2xx"] == _Server.answers[200] + _Server.answers[201]
    assert report["statuses"]["4xx"] == report["errors"]["status"] == _Server.answers[404]
    # An answer that says "Connection: close" ends its connection cleanly: the user reconnects, no error.
    assert report["errors"] == {"connect": 0, "read": 0, "write": 0, "status": _Server.answers[404], "timeout": 0}
    assert _Server.connections > 12
    ops = report["ops"]
    assert sum(ops.values()) >= answered  # requests sent, some maybe unanswered at the end
    assert ops["item"] == _Server.seen["/content/item"]
    assert ops["pay"] == _Server.seen["/billing/pay-invoice"]
    assert ops["register"] == _Server.seen["/users/register-user"]
    latency = report["latency_us"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p99"] <= latency["max"] < 1_000_000
    assert sum(report["per_second"].values()) == answered
