"""Commands that run an application: ``serve`` (HTTP, with its limits) and ``consume`` (its consumers only)."""

from __future__ import annotations

from typing import Annotated

import typer

from citadel.cli.common import AppArg, BrokerOpt, ModulesOpt, StoreOpt, fail, settings_of
from citadel.errors import CitadelError

__all__ = ["consume", "serve"]


_LIMITS = "Limits"  # where --help lists the limits

DevOpt = Annotated[
    bool,
    typer.Option(
        "--dev",
        help="development mode: create the missing token secret and keys in var/ (loopback addresses only)",
    ),
]


def serve(
    app: AppArg = None,
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on (default 8000)")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (default 1)")] = None,
    server: Annotated[
        str | None, typer.Option(help="HTTP server: citadel (built in, HTTP/1.1, the default) or granian")
    ] = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
    tls_cert: Annotated[
        str | None, typer.Option(help="PEM certificate chain: serve HTTPS, TLS 1.3 only (needs --tls-key)")
    ] = None,
    tls_key: Annotated[str | None, typer.Option(help="the certificate's unencrypted PEM private key")] = None,
    consumers: Annotated[
        str | None,
        typer.Option(
            help="where async projections and process managers run: workers (the default), process (one of "
            "their own, forked by the server) or none (left to `citadel consume`)"
        ),
    ] = None,
    max_body: Annotated[
        int | None,
        typer.Option(
            help="largest request body in bytes, for server and application (413; default 1 MiB)",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    max_request_line: Annotated[
        int | None, typer.Option(help="longest request target in bytes (414; default 8 KiB)", rich_help_panel=_LIMITS)
    ] = None,
    max_header_bytes: Annotated[
        int | None, typer.Option(help="largest header block in bytes (431; default 16 KiB)", rich_help_panel=_LIMITS)
    ] = None,
    max_headers: Annotated[
        int | None, typer.Option(help="most header lines in a request (431; default 100)", rich_help_panel=_LIMITS)
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(help="seconds for a request's headers to arrive (408; default 10)", rich_help_panel=_LIMITS),
    ] = None,
    min_body_rate: Annotated[
        int | None,
        typer.Option(
            help="bytes per second a body must average after header-timeout (408; default 1024)",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    keep_alive_timeout: Annotated[
        float | None, typer.Option(help="seconds an idle connection stays open (default 30)", rich_help_panel=_LIMITS)
    ] = None,
    send_timeout: Annotated[
        float | None,
        typer.Option(help="seconds to wait for a client that reads no answers (default 30)", rich_help_panel=_LIMITS),
    ] = None,
    max_connections: Annotated[
        int | None, typer.Option(help="open connections per worker (503; default 16384)", rich_help_panel=_LIMITS)
    ] = None,
    max_connections_per_client: Annotated[
        int | None,
        typer.Option(help="open connections per client address (429; default 256; 0: none)", rich_help_panel=_LIMITS),
    ] = None,
    max_connection_memory: Annotated[
        int | None,
        typer.Option(help="bytes of requests read ahead per connection (default 2 MiB)", rich_help_panel=_LIMITS),
    ] = None,
    max_wait: Annotated[
        float | None,
        typer.Option(help="most seconds Citadel-Wait may ask for (422; default 30)", rich_help_panel=_LIMITS),
    ] = None,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            help="reverse proxies whose Forwarded headers name the client: addresses or CIDRs, comma-separated",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="log lines as text (key=value, the default) or json (one object a line)")
    ] = None,
    tracing: Annotated[
        str | None,
        typer.Option(help="OpenTelemetry spans: off (the default), otlp (the OTEL_EXPORTER_OTLP_* collector), console"),
    ] = None,
    dev: DevOpt = False,
) -> None:
    """Serve the application over HTTP.

    With --tls-cert and --tls-key (or tls_cert and tls_key in citadel.toml): over HTTPS, TLS 1.3 only. The
    limits (see `citadel.http.server.Limits`) are Citadel's server's; with --server granian, granian's own apply,
    except the body limit and the proxies, which the application enforces itself.
    """
    options = dict(locals())  # every option by its setting's name
    options["dev"] = dev or None  # without --dev, CITADEL_DEV and citadel.toml decide
    settings = settings_of(options.pop("app"), **options)
    from citadel.server import serve as run_server

    try:
        run_server(settings)
    except CitadelError as exc:
        fail(str(exc))


def consume(
    app: AppArg = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
    dev: DevOpt = False,
) -> None:
    """Run the application's async projections and process managers, without HTTP, until interrupted.

    The process that servers started with --consumers none leave them to; several may run (on one node or
    many): each consumer runs in one of them at a time, and another takes over when it stops.
    """
    from citadel.server import consume as run_consumers

    settings = settings_of(app, store=store, modules=modules, broker=broker, dev=dev or None)
    try:
        run_consumers(settings)
    except CitadelError as exc:
        fail(str(exc))
