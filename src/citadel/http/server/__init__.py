"""Citadel's own HTTP/1.1 server for ASGI applications: asyncio protocols, the ``httptools`` parser (llhttp, the
parser of Node.js) and uvloop when installed. ``citadel serve --server granian`` serves with granian instead
(HTTP/2, its own worker management); ``bench/http_server.py`` compares the two, and uvicorn, under load.

What it does:

* HTTP/1.1 and 1.0, keep-alive, pipelined requests answered in order, ``Expect: 100-continue``, chunked request
  and response bodies (trailers are read, bounded and dropped), ``HEAD``;
* the ASGI 3 ``http`` and ``lifespan`` scopes (``state`` included); no WebSockets (an upgrade gets 400);
* request bodies are read whole before the application is called; the application sees one ``http.request``;
* every client is held to ``Limits`` (sizes, counts, clocks, connections per address, memory per connection),
  and refused with a status line and a problem document when it goes beyond;
* on SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight finish (at most
  ``shutdown_timeout`` seconds), then the lifespan's shutdown;
* TLS through ``ssl`` (``citadel serve`` pins TLS 1.3);
* ``run_workers`` forks worker processes that listen on one port and replaces any that dies.

The modules: ``limits`` (what a client may do), ``connection`` (one connection: parsing, limits, flow
control), ``exchange`` (one request's ASGI messages), ``protocol`` (what these need of each other), ``targets``
(the request target), ``responses`` (what the server writes itself), ``lifespan``, ``core`` (``HttpServer``),
``sockets`` and ``supervisor`` (processes).
"""

from citadel.http.server.core import HttpServer
from citadel.http.server.lifespan import ASGIApp
from citadel.http.server.limits import Limits
from citadel.http.server.sockets import accept_queues, bind, listeners
from citadel.http.server.supervisor import new_event_loop, run_until_stopped, run_workers, serve_forever

__all__ = [
    "ASGIApp",
    "HttpServer",
    "Limits",
    "accept_queues",
    "bind",
    "listeners",
    "new_event_loop",
    "run_until_stopped",
    "run_workers",
    "serve_forever",
]
