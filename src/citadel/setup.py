"""Turning settings into the parts an application runs with: token verifier, keyring, rate limiter.

``prepare`` runs once, in the process that starts the server (or the consumers), before anything is served.
``configure`` gives an application the settings ``citadel serve`` would give it, keys included: the command line's
tools use it, and so may any Python program that opens what a server wrote (``citadel.configure``).
In development mode (the ``dev`` setting, ``CITADEL_DEV=1``, ``--dev``) it creates the token secret, master
key file and service key file that are missing, as files in ``var/`` that every node started from the same
directory then shares; otherwise a missing one is an error that names the setting that provides it. Keys never
change behind the operator's back: ``check_stored_keys`` refuses a store whose data keys need a master key
that is not held. ``assemble`` runs in every worker and only reads.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from citadel.app import Application
from citadel.config import Settings, load_settings
from citadel.deployment import Deployment, WorkerSlot
from citadel.errors import ConfigurationError
from citadel.messages import EventRegistry
from citadel.messaging.connection import BrokerConnection
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from citadel.security.encryption import Keyring, MasterKeys
from citadel.security.identity import TokenVerifier
from citadel.security.keyfiles import create_private, read_private
from citadel.security.ratelimit import RateRule, open_rate_limiter
from citadel.security.shared_ratelimit import SharedBuckets
from citadel.store.url import open_store
from citadel.tracing import configure_tracing

__all__ = [
    "DEV_FIX",
    "assemble",
    "check_stored_keys",
    "configure",
    "deployment_of",
    "environment_of",
    "master_keys",
    "new_token_secret",
    "prepare",
    "prepare_secret",
    "service_keys",
    "token_secret",
    "tune",
    "use_keys",
    "verifier",
]

log = logging.getLogger("citadel")

DEV_FIX = "or run in development mode (--dev, CITADEL_DEV=1)"
"""How every refusal of a missing development secret ends."""


def new_token_secret() -> str:
    """The text of a new token secret file: a random HS256 secret."""
    return secrets.token_urlsafe(48) + "\n"


def _secret_file(settings: Settings) -> Path | None:
    """The token secret file the settings use (None: a secret given as such, or an identity provider's keys)."""
    if settings.auth_secret or settings.auth_public_key_file or settings.auth_jwks_file:
        return None
    return Path(settings.auth_secret_file) if settings.auth_secret_file else None


def _master_key_file(settings: Settings) -> Path | None:
    """The master key file the settings use (None: encryption off, or a key given as such)."""
    if not settings.encrypt or settings.master_key:
        return None
    return Path(settings.master_key_file) if settings.master_key_file else None


def _service_key_file(settings: Settings) -> Path | None:
    """The service key file the settings use (None: no broker, or keys given as such)."""
    if not settings.broker or settings.service_key:
        return None
    return Path(settings.service_key_file) if settings.service_key_file else None


def _makers(settings: Settings) -> list[tuple[Path | None, str, Callable[[Path], bool]]]:
    """Each development secret: the file the settings use for it (None: not needed), its name, and how to make
    one (False when the file appeared meanwhile)."""
    return [
        (_secret_file(settings), "token secret", lambda path: create_private(path, new_token_secret())),
        (_master_key_file(settings), "master key", lambda path: MasterKeys.generate().create(path)),
        (_service_key_file(settings), "service key", lambda path: ServiceKeys.generate().create(path)),
    ]


def _create_missing(settings: Settings, makers: list[tuple[Path | None, str, Callable[[Path], bool]]]) -> list[str]:
    """In development mode, make the missing files of ``makers``; return a warning for each one made."""
    warnings: list[str] = []
    for path, what, create in makers if settings.dev else ():
        if path is not None and not path.exists() and create(path):
            warnings.append(
                f"development mode: created a {what} in {path} (nodes started from this directory share it); "
                "production provides its own"
            )
    return warnings


def prepare(settings: Settings) -> list[str]:
    """Check that the secrets and keys the settings need exist; in development mode, create the missing ones.
    Return the warnings to show (what was created).

    Raises:
        ConfigurationError: one is missing outside development mode, unreadable, or open to other users.
    """
    warnings = _create_missing(settings, _makers(settings))
    token_secret(settings)
    master_keys(settings)
    service_keys(settings)
    return warnings


def prepare_secret(settings: Settings) -> list[str]:
    """In development mode, create the token secret file when it is missing (``citadel token``); return the
    warning to show."""
    return _create_missing(settings, _makers(settings)[:1])


def token_secret(settings: Settings) -> str | None:
    """The HS256 secret the settings name (None when tokens come from an identity provider).

    Raises:
        ConfigurationError: the secret file is missing, unreadable or open to other users.
    """
    if settings.auth_secret:
        return settings.auth_secret
    path = _secret_file(settings)
    if path is None:
        return None
    if not path.exists():
        raise ConfigurationError(
            f"no token secret: {path} does not exist. Set auth_secret_file (CITADEL_AUTH_SECRET_FILE) to the file "
            "that holds it or CITADEL_AUTH_SECRET to the secret, or verify an identity provider's tokens "
            f"(auth_public_key_file, auth_jwks_file); make one with `citadel keys generate --kind secret {path}`, "
            + DEV_FIX
        )
    return read_private(path, "token secret").strip()


def verifier(settings: Settings) -> TokenVerifier:
    """The bearer-token verifier the settings describe."""
    if settings.auth_public_key_file or settings.auth_jwks_file:
        return TokenVerifier.from_files(
            public_key_file=Path(settings.auth_public_key_file) if settings.auth_public_key_file else None,
            jwks_file=Path(settings.auth_jwks_file) if settings.auth_jwks_file else None,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
    secret = token_secret(settings)
    if secret is None:
        raise ConfigurationError(
            "no way to verify tokens: set auth_secret_file, auth_public_key_file or auth_jwks_file"
        )
    return TokenVerifier(secret=secret, issuer=settings.auth_issuer, audience=settings.auth_audience)


def master_keys(settings: Settings) -> MasterKeys | None:
    """The master keys the settings name, or None when encryption is off.

    Raises:
        ConfigurationError: none is set, or the key file is missing, malformed or open to other users.
    """
    if not settings.encrypt:
        return None
    if settings.master_key:
        return MasterKeys.from_environment(settings.master_key)
    path = _master_key_file(settings)
    if path is None:
        raise ConfigurationError(
            "encryption is on but no master key is set: set master_key_file (CITADEL_MASTER_KEY_FILE) or "
            "CITADEL_MASTER_KEY; make one with `citadel keys generate`"
        )
    if not path.exists():
        raise ConfigurationError(
            f"no master key: {path} does not exist. Set master_key_file (CITADEL_MASTER_KEY_FILE) to the key file "
            f"or CITADEL_MASTER_KEY to the key; make one with `citadel keys generate {path}`, " + DEV_FIX
        )
    return MasterKeys.load(path)


def service_keys(settings: Settings) -> ServiceKeys | None:
    """The keys that sign and verify messages between services, or None without a broker (nothing to sign).

    Raises:
        ConfigurationError: none is set, or the key file is missing, malformed or open to other users.
    """
    if not settings.broker:
        return None
    if settings.service_key:
        return ServiceKeys.parse(settings.service_key)
    path = _service_key_file(settings)
    if path is None:
        raise ConfigurationError(
            "services on a broker sign their messages but no service key is set: set service_key_file "
            "(CITADEL_SERVICE_KEY_FILE) or CITADEL_SERVICE_KEY; make one with `citadel keys generate --kind service`"
        )
    if not path.exists():
        raise ConfigurationError(
            f"no service key: {path} does not exist. Set service_key_file (CITADEL_SERVICE_KEY_FILE) to the key "
            "file or CITADEL_SERVICE_KEY to the keys; make one with "
            f"`citadel keys generate --kind service {path}` and give every service the same, " + DEV_FIX
        )
    return ServiceKeys.load(path)


async def check_stored_keys(store: str, registry: EventRegistry, keys: MasterKeys | None) -> None:
    """Open the store at ``store`` with ``keys`` and close it again: opening checks that every master key its
    data keys need is among ``keys`` (with None, encryption off, that it holds no sealed payloads).

    Raises:
        ConfigurationError: a master key is missing (the message names it and the settings that give it).
        StoreError: the store cannot be opened.
    """
    opened = open_store(store, registry, keyring=Keyring(keys) if keys is not None else None)
    await opened.open()
    await opened.close()


def deployment_of(settings: Settings, *, worker: WorkerSlot | None = None) -> Deployment:
    """The deployment ``settings`` describe: their store, the modules here and the broker to the others, and
    whether serving processes run the consumers (``consumers = "workers"``); ``worker``: this process's slot among
    the node's serving workers.

    Raises:
        ConfigurationError: a setting of the broker's connection or keys is missing, malformed or unsafe.
    """
    modules = [m.strip() for m in (settings.modules or "").split(",") if m.strip()]
    return Deployment(
        store=settings.store or None,
        modules=frozenset(modules) or None,
        broker=broker(settings) if settings.modules or settings.broker else None,
        consumers=settings.consumers == "workers",
        worker=worker,
    )


def place(application: Application, settings: Settings) -> None:
    """Give ``application`` the store and the placement (its modules here, the broker to the others) that
    ``settings`` name, as its deployment."""
    plan = deployment_of(settings)
    application.deployment = application.deployment.replace(store=plan.store, modules=plan.modules, broker=plan.broker)


def broker(settings: Settings) -> NatsBroker | None:
    """The broker to the other services that ``settings`` describe: its URL, connection and service keys (None
    without a broker).

    Raises:
        ConfigurationError: a setting of the connection or the keys is missing, malformed or unsafe.
    """
    if not settings.broker:
        return None
    connection = BrokerConnection.from_files(
        creds_file=settings.broker_creds_file,
        nkey_seed_file=settings.broker_nkey_seed_file,
        tls_ca=settings.broker_tls_ca,
        tls_cert=settings.broker_tls_cert,
        tls_key=settings.broker_tls_key,
        inbox_prefix=settings.broker_inbox_prefix,
        stream_replicas=settings.broker_stream_replicas,
    )
    return NatsBroker(
        settings.broker, keys=service_keys(settings), max_age=settings.message_max_age, connection=connection
    )


def configure(application: Application, settings: Settings | None = None, *, worker: WorkerSlot | None = None) -> None:
    """Give ``application`` what ``citadel serve`` gives it from ``settings`` (None: loaded as the command line
    loads them, from ``citadel.toml`` and ``CITADEL_*`` variables): its deployment (store, placement, whether it
    runs consumers, and ``worker``, its slot among a node's serving workers), master keys, leases and tracing
    (``citadel.tracing``, named after the application and the modules here). Call it
    before ``start`` (or ``async with``), so that the application reads and writes a served store as the server
    does: sealed with the same keys. In development mode, a missing master or service key file is created, as
    ``serve`` would.

    Raises:
        ConfigurationError: a setting is invalid, or a key it names is missing (the message names the setting).
    """
    if settings is None:
        settings = load_settings()
    for warning in _create_missing(settings, _makers(settings)[1:]):
        log.warning(warning)
    application.deployment = deployment_of(settings, worker=worker)
    tune(application, settings)
    if settings.tracing != "off":  # "off" leaves in place a provider the program installed itself (use_provider)
        modules = f" [{settings.modules}]" if settings.modules else ""
        configure_tracing(settings.tracing, service_name=f"{application.title or settings.app or 'citadel'}{modules}")


def tune(application: Application, settings: Settings) -> None:
    """Give ``application`` the master keys, leases, idempotency records' lifetime and consumers' placement of
    ``settings`` (``configure`` without the store and placement).

    Raises:
        ConfigurationError: encryption is on and the master key is missing, malformed or open to other users.
    """
    application.lease_ttl = settings.lease_ttl
    application.idempotency_ttl = settings.idempotency_ttl
    application.deployment = application.deployment.replace(consumers=settings.consumers == "workers")
    use_keys(application, settings)


def use_keys(application: Application, settings: Settings) -> None:
    """Give ``application`` a keyring of the master keys the settings name (none when encryption is off): the store
    it opens then seals and opens payloads, and refuses to open when its data keys need a master key not held.

    Raises:
        ConfigurationError: encryption is on and the master key is missing, malformed or open to other users.
    """
    keys = master_keys(settings)
    if keys is not None:
        application.keyring = Keyring(keys)


def assemble(
    application: Application,
    settings: Settings,
    *,
    buckets: SharedBuckets | None = None,
    share: int = 1,
    worker: WorkerSlot | None = None,
) -> Any:
    """Configure ``application`` from settings and return its ASGI app (authentication, rate limits, keys).

    ``buckets``: the node's shared rate-limit buckets, when several forked workers serve it. ``share``: without
    them, how many workers of this node each count on their own; each then lets through its share of a rule, so
    the node as a whole holds to it. ``worker``: this process's slot among the node's serving workers.
    """
    from citadel.http.asgi import create_asgi  # here: a program that only configures an application serves no HTTP
    from citadel.http.auth import bearer_authenticator

    configure(application, settings, worker=worker)
    local = open_rate_limiter(None, buckets=buckets)  # per node: the addresses' buckets, and callers' without Redis
    limiter = (
        open_rate_limiter(settings.redis_url, fail_open=settings.rate_limit_fail_open) if settings.redis_url else local
    )
    mine = share if buckets is None else 1
    return create_asgi(
        application,
        title=settings.app or "Citadel application",
        authenticate=bearer_authenticator(verifier(settings)),
        max_body=settings.max_body,
        max_wait=settings.max_wait,
        limiter=limiter,
        rate_rule=_share(
            RateRule(rate=settings.rate_limit_rate, burst=settings.rate_limit_burst), 1 if settings.redis_url else mine
        ),
        address_limiter=local,
        address_rule=_share(
            RateRule(rate=settings.rate_limit_address_rate, burst=settings.rate_limit_address_burst, name="address"),
            mine,
        ),
        trusted_proxies=settings.trusted_proxies,
        metrics=settings.metrics,
        metrics_token=settings.metrics_token,
        log_requests=settings.log_requests,
    )


def _share(rule: RateRule, workers: int) -> RateRule:
    """One worker's share of ``rule`` when ``workers`` count on their own."""
    if workers <= 1:
        return rule
    return RateRule(rate=rule.rate / workers, burst=max(1, rule.burst // workers), name=rule.name)


def environment_of(settings: Settings) -> dict[str, str]:
    """The ``CITADEL_*`` variables that carry ``settings`` to worker processes."""
    found = {}
    for field in msgspec.structs.fields(Settings):
        value = getattr(settings, field.name)
        if isinstance(value, bool):
            found[f"CITADEL_{field.name.upper()}"] = str(value).lower()
        elif isinstance(value, list):
            found[f"CITADEL_{field.name.upper()}"] = ",".join(value)
        elif value is not None:
            found[f"CITADEL_{field.name.upper()}"] = str(value)
    return found
