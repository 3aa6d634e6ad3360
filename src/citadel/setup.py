"""Turning settings into the parts an application runs with: token verifier, keyring, rate limiter.

``prepare`` runs once, in the process that starts the server, and creates the development secret and master
key file when they are missing (with a warning: production must bring its own). ``assemble`` runs in every
worker and only reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec

from citadel.app import Application
from citadel.config import Settings
from citadel.errors import ConfigurationError
from citadel.http.asgi import create_asgi
from citadel.http.auth import bearer_authenticator
from citadel.security.encryption import Keyring, MasterKeys
from citadel.security.identity import TokenVerifier, load_or_create_secret
from citadel.security.ratelimit import RateRule, open_rate_limiter
from citadel.security.shared_ratelimit import SharedBuckets

__all__ = ["assemble", "environment_of", "master_keys", "prepare", "token_secret", "verifier"]

log = logging.getLogger("citadel")


def prepare(settings: Settings) -> list[str]:
    """Create the development secret and master keys when missing; return the warnings to show."""
    warnings: list[str] = []
    uses_secret = not (settings.auth_secret or settings.auth_public_key_file or settings.auth_jwks_file)
    if uses_secret and settings.auth_secret_file:
        _, created = load_or_create_secret(Path(settings.auth_secret_file))
        if created:
            warnings.append(
                f"created a development token secret in {settings.auth_secret_file}; production must set "
                "auth_public_key_file, auth_jwks_file or its own secret"
            )
    if settings.encrypt and not settings.master_key and settings.master_key_file:
        path = Path(settings.master_key_file)
        if not path.exists():
            MasterKeys.generate().save(path)
            warnings.append(
                f"created a development master key in {path}; production must provide CITADEL_MASTER_KEY or a "
                "key file from `citadel keys generate`, and keep it out of the database's backups"
            )
    return warnings


def token_secret(settings: Settings) -> str | None:
    """The HS256 secret the settings name (None when tokens come from an identity provider)."""
    if settings.auth_secret:
        return settings.auth_secret
    if settings.auth_public_key_file or settings.auth_jwks_file or not settings.auth_secret_file:
        return None
    path = Path(settings.auth_secret_file)
    if not path.exists():
        raise ConfigurationError(f"no token secret at {path}: start the server once, or set auth_secret_file")
    return path.read_text().strip()


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
    """The master keys the settings name, or None when encryption is off."""
    if not settings.encrypt:
        return None
    if settings.master_key:
        return MasterKeys.from_environment(settings.master_key)
    if settings.master_key_file:
        path = Path(settings.master_key_file)
        if not path.exists():
            raise ConfigurationError(f"no master keys at {path}: run `citadel keys generate {path}`")
        return MasterKeys.load(path)
    raise ConfigurationError("encryption is on but no master key is set: set master_key_file or CITADEL_MASTER_KEY")


def place(application: Application, settings: Settings) -> None:
    """Give ``application`` the store and the topology (its modules here, the broker to the others) that
    ``settings`` name."""
    if settings.store:
        application.use_store(settings.store)
    if settings.modules or settings.broker:
        modules = [m.strip() for m in (settings.modules or "").split(",") if m.strip()]
        application.deploy(modules=modules or None, broker=settings.broker)


def configure(application: Application, settings: Settings) -> None:
    """Configure ``application`` from settings: its placement, keys, leases, and whether it runs consumers."""
    place(application, settings)
    application.lease_ttl = settings.lease_ttl
    application.runs_consumers = settings.consumers == "workers"
    keys = master_keys(settings)
    if keys is not None:
        application.keyring = Keyring(keys)


def assemble(
    application: Application, settings: Settings, *, buckets: SharedBuckets | None = None, share: int = 1
) -> Any:
    """Configure ``application`` from settings and return its ASGI app (authentication, rate limits, keys).

    ``buckets``: the node's shared rate-limit buckets, when several forked workers serve it. ``share``: without
    them, how many workers of this node each count on their own; each then lets through its share of a rule, so
    the node as a whole holds to it.
    """
    configure(application, settings)
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
