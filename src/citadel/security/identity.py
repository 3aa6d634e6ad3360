"""Identity: bearer JWTs in, an ``Actor`` (subject and roles) out.

Tokens are verified with PyJWT with the algorithms pinned (never taken from the token), and expiry, issuer
and audience checked. Keys: an HS256 secret for development (``citadel token`` signs with it), or a public
key / JWKS file for tokens from a real identity provider (RS256, ES256, EdDSA). A JWKS file is read again when
it changes (the provider rotated its keys). The subjects ``system`` and ``anonymous`` are the framework's own
actors: a token that claims one is refused.
"""

from __future__ import annotations

import collections
import json
import logging
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt

from citadel.context import ANONYMOUS, SYSTEM, Actor
from citadel.errors import ConfigurationError, Unauthenticated
from citadel.security.keyfiles import create_private, read_private

__all__ = ["RESERVED_SUBJECTS", "TokenVerifier", "issue_token", "load_or_create_secret"]

log = logging.getLogger("citadel.security")

_ASYMMETRIC = ("RS256", "ES256", "EdDSA")
_ROLE_CLAIM = "roles"
RESERVED_SUBJECTS = frozenset({SYSTEM.subject, ANONYMOUS.subject})
"""Subjects no token may claim: the framework's own actors (process managers, callers without a token)."""


class TokenVerifier:
    """Verifies bearer tokens and turns their claims into an ``Actor``.

    Args:
        secret: the HS256 key (development, or a shared secret between trusted services).
        public_key: a PEM public key for RS256/ES256/EdDSA tokens.
        jwks: a JSON Web Key Set (parsed), keys chosen by the token's ``kid``.
        issuer, audience: required values of ``iss`` and ``aud``.
        leeway: clock skew tolerated on ``exp`` and ``nbf``, in seconds.
    """

    JWKS_RELOAD = 1.0
    """Seconds between two looks at a JWKS file's size and modification time (it is read again when they change)."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks: dict[str, Any] | None = None,
        issuer: str = "citadel",
        audience: str = "citadel",
        leeway: float = 30.0,
    ) -> None:
        if sum(x is not None for x in (secret, public_key, jwks)) != 1:
            raise ConfigurationError("give exactly one of: an HS256 secret, a public key, or a JWKS file")
        if secret is not None and len(secret) < 32:
            raise ConfigurationError(
                "an HS256 secret must be at least 32 characters; make one with `citadel keys generate --kind secret`"
            )
        self._secret = secret
        self._public_key = public_key
        self._jwks = _key_set(jwks) if jwks is not None else None
        self._jwks_file: Path | None = None
        self._jwks_seen: tuple[int, int] | None = None
        self._jwks_looked = 0.0
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.algorithms: Sequence[str] = ("HS256",) if secret is not None else _ASYMMETRIC
        # Verifying a signature costs more than the rest of a request; a token seen before is trusted again
        # until it expires (its bytes were verified: they cannot have changed).
        self._verified: collections.OrderedDict[str, tuple[Actor, float]] = collections.OrderedDict()
        self.cache_size = 10_000

    @classmethod
    def from_files(
        cls,
        *,
        secret_file: Path | None = None,
        public_key_file: Path | None = None,
        jwks_file: Path | None = None,
        issuer: str = "citadel",
        audience: str = "citadel",
    ) -> TokenVerifier:
        """Build a verifier from key files (the secret file holds the secret on its first line); a JWKS file is
        read again whenever it changes.

        Raises:
            ConfigurationError: a file is missing or unreadable, or the secret file is open to other users.
        """
        secret = read_private(secret_file, "token secret").strip() if secret_file else None
        try:
            public_key = public_key_file.read_text() if public_key_file else None
            seen = _signature(jwks_file) if jwks_file else None
            jwks = json.loads(jwks_file.read_text()) if jwks_file else None
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the token key: {exc}") from exc
        verifier = cls(secret=secret, public_key=public_key, jwks=jwks, issuer=issuer, audience=audience)
        verifier._jwks_file, verifier._jwks_seen, verifier._jwks_looked = jwks_file, seen, time.monotonic()
        return verifier

    def _reload_jwks(self, path: Path) -> None:
        """Read the JWKS file again when its size or modification time changed; keep the old keys (and warn)
        when it cannot be read or holds no usable key."""
        self._jwks_looked = time.monotonic()
        try:
            seen = _signature(path)
        except OSError as exc:
            seen = None
            if self._jwks_seen is not None:
                log.warning("cannot read the JWKS file %s, keeping its previous keys: %s", path, exc)
        if seen is None or seen == self._jwks_seen:
            self._jwks_seen = seen
            return
        self._jwks_seen = seen
        try:
            keys = _key_set(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, AttributeError, ConfigurationError) as exc:
            log.warning("cannot reload the JWKS file %s, keeping its previous keys: %s", path, exc)
            return
        self._jwks = keys
        self._verified.clear()  # a token of a key that was withdrawn must be refused from now on

    def _key(self, token: str) -> Any:
        if self._secret is not None:
            return self._secret
        if self._public_key is not None:
            return self._public_key
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._jwks.keys if self._jwks is not None else ():
            if key.key_id == kid:
                return key.key
        raise Unauthenticated("the token's key id is not in the key set")

    def verify(self, token: str) -> Actor:
        """Return the actor a token speaks for.

        Raises:
            Unauthenticated: the token is malformed, expired, not yet valid, for another issuer or audience,
                signed with another key or algorithm, or lacks a subject or claims a reserved one.
        """
        if self._jwks_file is not None and time.monotonic() - self._jwks_looked >= self.JWKS_RELOAD:
            self._reload_jwks(self._jwks_file)
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1] + self.leeway:
                return known[0]
            del self._verified[token]
        actor, expires = self._verify(token)
        self._verified[token] = (actor, expires)
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return actor

    def _verify(self, token: str) -> tuple[Actor, float]:
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=list(self.algorithms),
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from exc
        subject = str(claims["sub"])
        if subject in RESERVED_SUBJECTS:
            raise Unauthenticated(f"the token's subject {subject!r} is reserved for Citadel's own actors")
        roles = claims.get(_ROLE_CLAIM, [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated(f"the token's {_ROLE_CLAIM!r} claim must be a list of strings")
        return Actor(subject, frozenset(roles)), float(claims["exp"])


def issue_token(
    secret: str,
    subject: str,
    roles: Sequence[str] = (),
    *,
    ttl: float = 3600.0,
    issuer: str = "citadel",
    audience: str = "citadel",
) -> str:
    """Return an HS256 token for ``subject`` with ``roles``, valid for ``ttl`` seconds (for development)."""
    now = int(time.time())
    claims = {
        "sub": subject,
        _ROLE_CLAIM: list(roles),
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl),
        "iss": issuer,
        "aud": audience,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def load_or_create_secret(path: Path) -> tuple[str, bool]:
    """Return the secret in ``path``, creating the file with a new random secret when missing (mode 0600; for
    development mode only). Returns the secret and whether this call created it.

    Raises:
        ConfigurationError: the file cannot be read, or is open to other users.
    """
    created = create_private(path, secrets.token_urlsafe(48) + "\n")
    return read_private(path, "token secret").strip(), created


def _signature(path: Path) -> tuple[int, int]:
    """What tells that a file changed: its modification time and size."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _key_set(jwks: Any) -> jwt.PyJWKSet:
    """The keys of a parsed JWKS document.

    Raises:
        ConfigurationError: it holds no key usable here.
    """
    try:
        return jwt.PyJWKSet.from_dict(jwks)
    except (jwt.PyJWTError, TypeError, AttributeError, KeyError) as exc:
        raise ConfigurationError(f"the JWKS holds no usable key: {exc}") from exc
