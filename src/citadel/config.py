"""Settings: one file (``citadel.toml``), overridden by ``CITADEL_*`` environment variables, overridden by
command-line options. Read only when asked (never at import).

    # citadel.toml
    app = "examples.shop:app"
    store = "sqlite:///var/shop.db"
    host = "127.0.0.1"
    port = 8000
    workers = 1
    tls_cert = "/etc/citadel/cert.pem"   # serve HTTPS (TLS 1.3 only) with this PEM certificate chain
    tls_key = "/etc/citadel/key.pem"     # and its unencrypted PEM private key; give both or neither

The same keys work as environment variables: ``CITADEL_STORE=sqlite:///other.db``, ``CITADEL_PORT=9000``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from citadel.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where and how an application runs."""

    app: str | None = None
    """The application to run, as ``package.module:attribute``."""
    store: str | None = None
    """Event store URL; None keeps the application's own default."""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    server: str = "citadel"
    """The HTTP server: ``citadel`` (Citadel's own HTTP/1.1 server, the leanest) or ``granian`` (HTTP/2 too)."""
    max_connections: int = 16384
    """Connections each worker serves at once (keep-alive clients included). Beyond that, Citadel's server
    answers 503 and closes; granian keeps them waiting to be accepted."""
    max_body: int = 1 << 20
    """Largest request body in bytes, for the server and the application alike (413 beyond, before the body is
    read and before ``100 Continue``)."""
    max_request_line: int = 8 * 1024
    """Longest request target in bytes (414 beyond). This and the limits below are Citadel's server's
    (``citadel.http.server.Limits``); granian applies its own."""
    max_header_bytes: int = 16 * 1024
    """Largest header block in bytes (431 beyond)."""
    max_headers: int = 100
    """Most header lines in a request (431 beyond)."""
    header_timeout: float = 10.0
    """Seconds from a request's first byte (or the connection's start) to the end of its headers (408 beyond)."""
    min_body_rate: int = 1024
    """Bytes per second a request body must average once ``header_timeout`` seconds of it have passed (408)."""
    keep_alive_timeout: float = 30.0
    """Seconds an idle connection stays open between requests; keep it above a reverse proxy's own."""
    send_timeout: float = 30.0
    """Seconds the server waits for a client that reads none of its answers before dropping it."""
    max_connections_per_client: int = 256
    """Open connections of one client address (an IPv6 client: its /64) per worker, 429 beyond; 0: no limit.
    Trusted proxies are not limited."""
    max_connection_memory: int = 2 << 20
    """Bytes of requests one connection may have read ahead of its answers; the server stops reading beyond."""
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    """Reverse proxies (addresses or CIDR networks) whose ``Forwarded`` or ``X-Forwarded-For`` headers name the
    client, for rate limits and logs; comma-separated in ``CITADEL_TRUSTED_PROXIES``. Default: none."""
    max_wait: float = 30.0
    """The most seconds a query's ``Citadel-Wait`` may ask to wait for ``min_position`` (422 beyond)."""
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    """How ``citadel serve`` writes log lines to standard error: ``text`` (``key=value`` pairs) or ``json`` (one
    object per line); see ``citadel.logs``."""
    log_requests: bool = True
    """Log one line per HTTP request (``citadel.http.access``); failures are logged either way."""
    lease_ttl: float = 5.0
    consumers: str = "workers"
    """Where async projections and process managers run: ``workers`` (in the serving processes, which compete
    for each one's lease), ``process`` (``citadel serve`` forks a process of their own, so the workers only
    serve requests), or ``none`` (not with the server: ``citadel consume`` runs them, here or on another node)."""
    tls_cert: str | None = None
    """PEM certificate chain to serve HTTPS with (TLS 1.3 only); needs ``tls_key``. Relative to the working
    directory."""
    tls_key: str | None = None
    """The certificate's unencrypted PEM private key; needs ``tls_cert``."""
    auth_secret: str | None = None
    """HS256 secret that signs and verifies bearer tokens (prefer ``auth_secret_file`` or a public key)."""
    auth_secret_file: str | None = "var/citadel-dev-secret"  # noqa: S105 - a file name, not a secret
    """File holding the HS256 secret; ``citadel serve`` creates it for development when missing."""
    auth_public_key_file: str | None = None
    """PEM public key of an identity provider (RS256/ES256/EdDSA tokens); replaces the secret."""
    auth_jwks_file: str | None = None
    """JSON Web Key Set of an identity provider; replaces the secret."""
    auth_issuer: str = "citadel"
    auth_audience: str = "citadel"
    encrypt: bool = True
    """Encrypt stored payloads (AES-256-GCM, a key per data subject)."""
    master_key: str | None = None
    """Base64 of a 32-byte master key (``CITADEL_MASTER_KEY``); replaces ``master_key_file``."""
    master_key_file: str | None = "var/citadel-master-keys.json"
    """Master keys written by ``citadel keys generate``; ``citadel serve`` creates one for development."""
    rate_limit_rate: float = 50.0
    """Tokens per second refilled into each caller's bucket (``CITADEL_RATE_LIMIT_RATE``)."""
    rate_limit_burst: int = 100
    """Bucket size: how many requests a caller may make at once (``CITADEL_RATE_LIMIT_BURST``)."""
    rate_limit_address_rate: float = 200.0
    """Tokens per second refilled into each client address's bucket, taken by every request before
    authentication (a flood of bad tokens is limited too); per node (an IPv6 client: its /64)."""
    rate_limit_address_burst: int = 400
    """Size of each client address's bucket: keep it above what the callers behind one address (a NAT, an office)
    send at once."""
    redis_url: str | None = None
    """Share rate-limit buckets across nodes in this Redis (``CITADEL_REDIS_URL``); in process otherwise."""
    rate_limit_fail_open: bool = True
    """When Redis is unreachable: let requests through (True) or refuse them with 429 (False)."""
    modules: str | None = None
    """Run only these modules here, comma-separated (``billing`` or ``users,orders``; in ``citadel.toml`` a
    list works too); the others run in other services, reached through ``broker``. Default: every module."""
    broker: str | None = None
    """The broker between services: ``nats://host:4222`` (NATS with JetStream); a path names the application
    on a shared server (``nats://host:4222/shop``). User and password or a token go in the URL
    (``nats://user:password@host:4222``, ``nats://token@host:4222``); ``tls://`` connects over TLS."""
    broker_creds_file: str | None = None
    """A NATS ``.creds`` file (user JWT and NKEY seed) to connect with."""
    broker_nkey_seed_file: str | None = None
    """A NATS NKEY seed file to connect with (instead of a ``.creds`` file)."""
    broker_tls_ca: str | None = None
    """PEM CA certificates that NATS's server certificate must chain to (``tls://``)."""
    broker_tls_cert: str | None = None
    """PEM client certificate for NATS servers that verify clients; needs ``broker_tls_key``."""
    broker_tls_key: str | None = None
    """The client certificate's unencrypted PEM private key."""
    broker_inbox_prefix: str = "_INBOX"
    """Where NATS replies to this service arrive: a prefix of its own (``_INBOX_billing``) lets its NATS user be
    allowed to subscribe to its own replies alone."""
    broker_stream_replicas: int | None = None
    """Copies of the events stream in a NATS cluster (1 to 5; 3 survives one server lost). Unset: a new stream
    gets one, and a service starting never changes an existing stream's count."""
    service_key: str | None = None
    """The keys that sign and verify every message between services, as ``id:base64`` of 32 random bytes,
    comma-separated, the signing key first (a second key stays valid while every service rotates to the first).
    Replaces ``service_key_file``; ``CITADEL_SERVICE_KEY``."""
    service_key_file: str | None = "var/citadel-service-keys.json"
    """File holding the service keys (``citadel keys service``; created in development mode)."""
    message_max_age: float = 60.0
    """Seconds after which a signed request or reply between services is refused as stale."""
    dev: bool = False
    """Development mode (``CITADEL_DEV=1``; ``make run`` sets it): missing development secrets and keys are created,
    and serving is refused on addresses other than loopback. Without it, a missing secret is an error."""
    idempotency_ttl: float = 86400.0
    """Seconds an idempotency record (a command's result, kept for retries) is kept before it is pruned."""
    metrics: bool = True
    """Serve Prometheus metrics at ``/metrics`` (to administrators and to ``metrics_token``) and record them."""
    metrics_token: str | None = None
    """The bearer token a Prometheus scraper sends to ``/metrics`` (``CITADEL_METRICS_TOKEN``); without it only
    administrators' tokens are accepted."""
    tracing: Literal["off", "otlp", "console"] = "off"
    """Where OpenTelemetry spans go (``CITADEL_TRACING``, ``--tracing``): ``off`` records none, ``otlp`` exports them
    to the collector the standard ``OTEL_EXPORTER_OTLP_*`` variables name, ``console`` prints them; the last two
    need the ``otel`` extra (see ``citadel.tracing``)."""


def load_settings(path: Path | None = None, *, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Merge defaults, ``citadel.toml`` (or ``path``), ``CITADEL_*`` variables and ``overrides`` (None ignored).

    Raises:
        ConfigurationError: the file is not valid TOML, or a key or value is wrong (the message names it).
    """
    values: dict[str, Any] = {}
    file = path if path is not None else Path("citadel.toml")
    if path is not None and not file.exists():
        raise ConfigurationError(f"settings file {file} does not exist")
    if file.exists():
        try:
            values.update(tomllib.loads(file.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{file} is not valid TOML: {exc}") from exc
    fields = {f.name: f.type for f in msgspec.structs.fields(Settings)}
    env = os.environ if environ is None else environ
    for name in fields:
        raw = env.get(f"CITADEL_{name.upper()}")
        if raw is not None:
            values[name] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(values.get("modules"), list):
        values["modules"] = ",".join(str(m) for m in values["modules"])
    if isinstance(values.get("trusted_proxies"), str):
        values["trusted_proxies"] = [p.strip() for p in values["trusted_proxies"].split(",") if p.strip()]
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"invalid setting: {exc} (from {file}, CITADEL_* variables or options)") from exc
