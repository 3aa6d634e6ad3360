"""Identity: bearer JWTs in, an ``Actor`` (subject and roles) out.

Tokens are verified with PyJWT with the algorithms pinned (never taken from the token), and expiry, issuer
and audience checked. Keys: an HS256 secret for development (``citadel token`` signs with it), or a public
key / JWKS file for tokens from a real identity provider (RS256, ES256, EdDSA).
"""

from __future__ import annotations

import collections
import json
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt

from citadel.context import Actor
from citadel.errors import ConfigurationError, Unauthenticated

__all__ = ["TokenVerifier", "issue_token", "load_or_create_secret"]

_ASYMMETRIC = ("RS256", "ES256", "EdDSA")
_ROLE_CLAIM = "roles"


class TokenVerifier:
    """Verifies bearer tokens and turns their claims into an ``Actor``.

    Args:
        secret: the HS256 key (development, or a shared secret between trusted services).
        public_key: a PEM public key for RS256/ES256/EdDSA tokens.
        jwks: a JSON Web Key Set (parsed), keys chosen by the token's ``kid``.
        issuer, audience: required values of ``iss`` and ``aud``.
        leeway: clock skew tolerated on ``exp`` and ``nbf``, in seconds.
    """

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
            raise ConfigurationError("an HS256 secret must be at least 32 characters; generate one with `citadel keys`")
        self._secret = secret
        self._public_key = public_key
        self._jwks = jwt.PyJWKSet.from_dict(jwks) if jwks is not None else None
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
        """Build a verifier from key files (the secret file holds the secret on its first line).

        Raises:
            ConfigurationError: a file is missing or unreadable.
        """
        try:
            secret = secret_file.read_text().strip() if secret_file else None
            public_key = public_key_file.read_text() if public_key_file else None
            jwks = json.loads(jwks_file.read_text()) if jwks_file else None
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the token key: {exc}") from exc
        return cls(secret=secret, public_key=public_key, jwks=jwks, issuer=issuer, audience=audience)

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
                signed with another key or algorithm, or lacks a subject.
        """
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
        roles = claims.get(_ROLE_CLAIM, [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated(f"the token's {_ROLE_CLAIM!r} claim must be a list of strings")
        return Actor(str(claims["sub"]), frozenset(roles)), float(claims["exp"])


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
    """Return the secret in ``path``, creating the file with a new random secret when missing (mode 0600).

    Returns the secret and whether it was just created.
    """
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret, True
