"""Serving an application over HTTP, with one or more worker processes.

Two servers: Citadel's own (``citadel.http.server``, the default: HTTP/1.1, the least CPU and memory per
connection) and granian (``server = "granian"``: HTTP/2 too). With Citadel's server, workers are forked from
this process and build their app from the settings; granian's workers import the application themselves, the
settings reaching them through ``CITADEL_*`` environment variables (``asgi_from_environment``).

With ``tls_cert`` and ``tls_key`` the server speaks HTTPS only, and only TLS 1.3: a client that offers TLS 1.2
or older fails the handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from citadel import setup
from citadel.config import Settings, load_settings
from citadel.deployment import WorkerSlot
from citadel.errors import ConfigurationError
from citadel.extras import require
from citadel.http.clients import TrustedProxies
from citadel.http.server.limits import Limits
from citadel.loading import load_application
from citadel.messaging.connection import masked
from citadel.metrics import metrics
from citadel.metrics.instrument import instrument
from citadel.metrics.multiprocess import process_exited, shared_values
from citadel.metrics.scrape import ConsumerWatch
from citadel.security.shared_ratelimit import SharedBuckets
from citadel.setup import assemble, environment_of, prepare
from citadel.tuning import tune_for_serving

__all__ = [
    "CONSUMER_PLACES",
    "asgi_from_environment",
    "consume",
    "is_loopback",
    "serve",
    "server_limits",
    "tls_files",
]


def asgi_from_environment() -> Any:
    """Build the ASGI app from ``CITADEL_*`` settings (the factory each granian worker calls)."""
    settings = load_settings(path=None)
    _log_to_stderr(settings)
    app = _asgi(settings, share=settings.workers)  # granian's workers share no memory: each takes its share
    tune_for_serving()  # this process is a granian worker: it only serves
    return app


def _backlog(settings: Settings) -> int:
    """The listen backlog: room for a worker's connections arriving at once (the kernel caps it further)."""
    return max(1024, min(settings.max_connections, 65535))


def _log_to_stderr(settings: Settings) -> None:
    from citadel.logs import configure_logs

    configure_logs(level=settings.log_level, log_format=settings.log_format)


def _say(settings: Settings, text: str, *, warning: bool = False) -> None:
    """Tell the operator ``text``: printed, or with JSON logs, a log line (so that every line is JSON)."""
    if settings.log_format == "json":
        logging.getLogger("citadel").log(logging.WARNING if warning else logging.INFO, text)
    elif warning:
        print(f"Citadel: WARNING: {text}", file=sys.stderr, flush=True)
    else:
        print(f"Citadel: {text}", flush=True)


def _asgi(
    settings: Settings, *, buckets: SharedBuckets | None = None, share: int = 1, worker: WorkerSlot | None = None
) -> Any:
    """The ASGI app of ``settings.app``, configured from ``settings`` (rate limits: see ``setup.assemble``), for
    serving worker ``worker`` of the node (None: the only one)."""
    if not settings.app:
        raise ConfigurationError("CITADEL_APP is not set; start the server with `citadel serve APP`")
    return assemble(load_application(settings.app), settings, buckets=buckets, share=share, worker=worker)


def tls_files(settings: Settings) -> tuple[Path, Path] | None:
    """Return the certificate chain and key to serve HTTPS with, or None for plain HTTP.

    Raises:
        ConfigurationError: only one of the two is set, a file is missing, or they are not a usable PEM
            certificate chain and unencrypted private key that belong together.
    """
    cert, key = settings.tls_cert, settings.tls_key
    if not cert and not key:
        return None
    if not key:
        raise ConfigurationError(
            "a TLS certificate needs its private key: pass --tls-key FILE too (or set tls_key in citadel.toml, "
            "or CITADEL_TLS_KEY)"
        )
    if not cert:
        raise ConfigurationError(
            "a TLS private key needs its certificate: pass --tls-cert FILE too (or set tls_cert in citadel.toml, "
            "or CITADEL_TLS_CERT)"
        )
    for path, what, setting in ((cert, "certificate", "tls_cert"), (key, "private key", "tls_key")):
        if not Path(path).is_file():
            raise ConfigurationError(
                f"the TLS {what} file {path} does not exist; check --{setting.replace('_', '-')} "
                f"(or {setting} in citadel.toml, or CITADEL_{setting.upper()})"
            )

    def encrypted() -> NoReturn:
        raise ConfigurationError(f"the TLS private key {key} is encrypted; give an unencrypted PEM key")

    try:  # fail here with one line, not with a traceback from the server (which would also prompt for a password)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=encrypted)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(
            f"cannot serve TLS with certificate {cert} and key {key}: {exc}; both must be PEM files, the key "
            "unencrypted and matching the certificate"
        ) from exc
    return Path(cert), Path(key)


SERVERS = ("citadel", "granian")
CONSUMER_PLACES = ("workers", "process", "none")
"""Where async projections and process managers run (``Settings.consumers``)."""
_CONSUMERS_SAID = {"workers": "", "process": ", consumers in a process of their own", "none": ", no consumers"}


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context that speaks TLS 1.3 and nothing older."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def serve(settings: Settings) -> None:
    """Serve ``settings.app`` on ``settings.host:settings.port`` until interrupted (HTTPS with TLS 1.3 when
    ``settings.tls_cert`` and ``settings.tls_key`` are set).

    Raises:
        ConfigurationError: the settings cannot be served (the message says which and how to fix it).
    """
    if not settings.app:
        raise ConfigurationError("no application given: pass APP (e.g. examples.shop:app) or set app in citadel.toml")
    if settings.server not in SERVERS:
        raise ConfigurationError(
            f"unknown server {settings.server!r}: choose one of {', '.join(SERVERS)} (--server, or server in "
            "citadel.toml, or CITADEL_SERVER)"
        )
    if settings.workers < 1:
        raise ConfigurationError(f"workers must be at least 1, not {settings.workers}")
    if settings.server == "granian":
        require("granian", "granian", "serving with granian")
    if settings.server == "granian" and settings.consumers == "process":
        raise ConfigurationError(
            "consumers = process needs Citadel's server: with granian, set consumers = none and run "
            "`citadel consume` beside it"
        )
    if settings.dev and not is_loopback(settings.host):
        raise ConfigurationError(
            f"development mode serves on loopback only (127.0.0.1, ::1, localhost), not on {settings.host}: serve "
            "on --host 127.0.0.1, or leave development mode (drop --dev, CITADEL_DEV and dev in citadel.toml) and "
            "provide the secrets and keys"
        )
    tls = tls_files(settings)
    limits = server_limits(settings)
    TrustedProxies(settings.trusted_proxies)  # fails here, with its message, not in every worker
    _log_to_stderr(settings)
    settings = _checked(settings, "serve")
    url = f"{'https' if tls else 'http'}://{settings.host}:{settings.port}"
    _say(
        settings,
        f"serving {settings.app} on {url} with {settings.server} "
        f"(docs: {url}/docs, store: {masked(settings.store or '')}, workers: {settings.workers}"
        f"{_CONSUMERS_SAID[settings.consumers]}{', TLS 1.3 only' if tls else ''}"
        f"{', development mode' if settings.dev else ''})",
    )
    if settings.server == "granian":
        _serve_granian(settings, tls)
    else:
        _serve_citadel(settings, tls, limits)


def server_limits(settings: Settings) -> Limits:
    """The limits of Citadel's server that ``settings`` give.

    Raises:
        ConfigurationError: a limit is out of range, or they contradict each other (the message names which).
    """
    return Limits(**{name: getattr(settings, name) for name in Limits.__struct_fields__})


def _checked(settings: Settings, command: str) -> Settings:
    """``settings`` with the store named, once the application loads, the keys and secrets are usable (created
    in development mode) and the store's data keys need no master key that is missing (fail here, with a clear
    message, not in every worker)."""
    if settings.consumers not in CONSUMER_PLACES:
        raise ConfigurationError(
            f"unknown consumers {settings.consumers!r}: choose one of {', '.join(CONSUMER_PLACES)} (--consumers, "
            "or consumers in citadel.toml, or CITADEL_CONSUMERS)"
        )
    application = load_application(settings.app or "")
    store = settings.store or application.store_spec
    if not isinstance(store, str):
        raise ConfigurationError(f"`citadel {command}` needs a store URL; pass --store or set store in citadel.toml")
    for warning in prepare(settings):
        _say(settings, warning, warning=True)
    if settings.tracing != "off":  # fail here, with one line naming the extra, not in every worker
        require("opentelemetry.sdk.trace", "otel", "tracing")
    keys = setup.master_keys(settings)
    setup.verifier(settings)
    setup.broker(settings)  # its connection files and service keys, checked once here
    # Before anything is served: a store whose keys this process lacks (or any sealed store, with encryption
    # off) is refused here, once, with the settings to change, not in every worker.
    asyncio.run(setup.check_stored_keys(store, application.registry, keys))
    return msgspec.structs.replace(settings, store=store)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``), which only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def consume(settings: Settings) -> None:
    """Run ``settings.app``'s async projections and process managers, and nothing else (no HTTP), until SIGTERM
    or SIGINT: the process that serving processes started with ``consumers = none`` leave them to.

    Raises:
        ConfigurationError: the settings cannot be run (the message says which and how to fix it).
    """
    if not settings.app:
        raise ConfigurationError("no application given: pass APP (e.g. examples.shop:app) or set app in citadel.toml")
    _log_to_stderr(settings)
    settings = _checked(settings, "consume")
    _say(settings, f"running the consumers of {settings.app} (store: {masked(settings.store or '')})")
    _consume(settings, lambda: None)


def _consume(settings: Settings, started: Callable[[], None]) -> None:
    from citadel.http.server import run_until_stopped

    application = load_application(settings.app or "")
    setup.configure(application, settings)
    stack = contextlib.AsyncExitStack()

    async def start() -> None:
        await application.start(consumers=True)
        if settings.metrics:  # beside forked workers, which serve what this process records
            instrument(application, metrics())
            await stack.enter_async_context(ConsumerWatch(application, metrics()).syncing(1.0, read_store=True))

    async def stop() -> None:
        await stack.aclose()
        await application.stop()

    run_until_stopped(start, stop, started)


def _serve_citadel(settings: Settings, tls: tuple[Path, Path] | None, limits: Limits) -> None:
    from citadel.http.server import accept_queues, bind, listeners, run_workers, serve_forever

    host, port = settings.host, settings.port
    backlog = _backlog(settings)
    queues = accept_queues(settings.max_connections)
    try:  # holds the port (and fails here if it is taken); workers listen on sockets of their own
        holder = bind(host, port, backlog=backlog, reuse_port=True, listen=False)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port or --host"
        ) from exc
    _log_to_stderr(settings)
    # Made before the workers are forked, so that they all count in the same rate-limit buckets.
    buckets = SharedBuckets() if settings.workers > 1 else None

    def make_app(slot: tuple[int, int] | None) -> Any:
        # Called in each forked worker with its slot, which the application is given.
        return _asgi(settings, buckets=buckets, worker=WorkerSlot(*slot) if slot is not None else None)

    def listen() -> list[socket.socket]:
        return listeners(host, port, queues, backlog=backlog)

    options: dict[str, Any] = {
        "ssl_context": tls_context(*tls) if tls else None,
        "backlog": backlog,
        "limits": limits,
        "trusted_proxies": settings.trusted_proxies,
    }
    background = functools.partial(_consume, settings) if settings.consumers == "process" else None

    try:
        with holder:
            if settings.workers == 1 and background is None:
                serve_forever(make_app, listen(), **options)
            else:
                with shared_values() if settings.metrics else contextlib.nullcontext():  # summed when scraped
                    if run_workers(
                        settings.workers, make_app, listen, background=background, exited=process_exited, **options
                    ):
                        raise ConfigurationError("a worker could not start the application; its message is above")
    finally:
        if buckets is not None:
            buckets.close()


def _serve_granian(settings: Settings, tls: tuple[Path, Path] | None) -> None:
    tls_options: dict[str, Any] = {}
    if tls:
        try:
            from granian.constants import SSLProtocols
        except ImportError as exc:  # granian < 2.6 has no minimum to pin
            raise ConfigurationError("serving TLS needs granian 2.6 or newer: pip install 'granian>=2.6'") from exc
        # TLS 1.3 is granian's default minimum today; pinned so that no upgrade can lower it.
        tls_options = {"ssl_cert": tls[0], "ssl_key": tls[1], "ssl_protocol_min": SSLProtocols.tls13}
    os.environ.update(environment_of(settings))
    with shared_values() if settings.workers > 1 and settings.metrics else contextlib.nullcontext():
        _run_granian(settings, tls_options)


def _run_granian(settings: Settings, tls_options: dict[str, Any]) -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    Granian(
        "citadel.server:asgi_from_environment",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        factory=True,
        log_level=LogLevels(settings.log_level),
        # Without backpressure granian serves only backlog // workers connections per worker: keep-alive
        # clients beyond that stay connected but unanswered.
        backlog=_backlog(settings),
        backpressure=settings.max_connections,
        **tls_options,
    ).serve()
