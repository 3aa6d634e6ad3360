"""HTTP authentication: ``Authorization: Bearer <token>`` to an ``Actor``; no header is the anonymous actor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from citadel.context import ANONYMOUS, Actor
from citadel.errors import Unauthenticated
from citadel.security.identity import TokenVerifier

__all__ = ["bearer_authenticator"]


def bearer_authenticator(verifier: TokenVerifier) -> Callable[[Request], Awaitable[Actor]]:
    """Return an authenticator that verifies bearer tokens with ``verifier``.

    A request without ``Authorization`` is anonymous (the policy decides what anonymous may do); a malformed
    header or an invalid token is refused with ``Unauthenticated`` (401), never treated as anonymous.
    """

    async def authenticate(request: Request) -> Actor:
        for name, value in request.scope["headers"]:  # as request.headers.get, without building Headers
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        else:
            return ANONYMOUS
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send credentials as `Authorization: Bearer <token>`")
        return verifier.verify(token.strip())

    return authenticate
