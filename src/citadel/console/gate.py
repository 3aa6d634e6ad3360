"""Who may use the console (an administrator, as for ``/metrics`` and ``/ready``'s report), and how a browser
proves it.

A script sends ``Authorization: Bearer <token>`` like any API client. A browser cannot add that header to a link
it follows or a form it posts, so the login form takes the token once and keeps it in a cookie that is
``HttpOnly`` (no script of any page can read it), ``SameSite=Strict`` (the browser sends it only with requests
from the console's own site, so another site's page cannot use it), ``Secure`` when the console is served over
TLS, and limited to the console's path. The cookie holds the token itself, so the application's authenticator
verifies it on every request exactly as it verifies the header: its expiry and signature still hold, and no
session state lives in the server. Every form post must also come from the console's origin
(``check_same_origin``): a second wall against cross-site requests, for browsers that do not honour ``SameSite``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import Receive, Scope

from citadel.console.web import Refusal
from citadel.context import Actor
from citadel.errors import AccessDenied, CitadelError, Unauthenticated
from citadel.http.problems import from_exception
from citadel.http.raw import header_map

if TYPE_CHECKING:
    from citadel.http.endpoints import Authenticator

__all__ = ["COOKIE", "Gate", "clear_cookie", "login_cookie"]

COOKIE = "citadel_console"
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,4096}")
_BEARER = [(b"www-authenticate", b'Bearer realm="citadel"')]


def login_cookie(token: str, path: str, scope: Scope) -> str:
    """The ``Set-Cookie`` value that keeps ``token`` for the console at ``path`` (see the module docstring)."""
    secure = "; Secure" if scope.get("scheme") in ("https", "wss") else ""
    return f"{COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict{secure}"


def clear_cookie(path: str, scope: Scope) -> str:
    """The ``Set-Cookie`` value that removes the console's cookie."""
    return login_cookie("", path, scope) + "; Max-Age=0"


def cookie_token(scope: Scope) -> str | None:
    """The token the console's cookie holds, when the request sends one that looks like a token."""
    for name, value in scope["headers"]:
        if name != b"cookie":
            continue
        text: str = value.decode("latin-1")
        for piece in text.split(";"):
            key, _, token = piece.strip().partition("=")
            if key == COOKIE and _TOKEN.fullmatch(token):
                return token
    return None


def valid_token(token: str) -> bool:
    """Whether ``token`` has the shape of a bearer token (what the login form accepts)."""
    return _TOKEN.fullmatch(token) is not None


def with_bearer(scope: Scope, token: str) -> Scope:
    """A copy of ``scope`` whose ``Authorization`` header carries ``token``, for the application's authenticator."""
    headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
    return {**scope, "headers": [*headers, (b"authorization", b"Bearer " + token.encode("latin-1"))]}


def check_same_origin(scope: Scope) -> None:
    """Refuse a form post that another site's page may have sent.

    Browsers say where a request comes from in ``Sec-Fetch-Site``, which no page can set: it must be
    ``same-origin``. Without it (an older browser), the ``Origin`` must name the request's host; the console's
    pages send no referrer, so a browser may send ``Origin: null`` even from them, which is refused here only
    when ``Sec-Fetch-Site`` does not vouch for the request. A request with an ``Authorization`` header and
    neither comes from a program, which a page of another site cannot make send it.

    Raises:
        Refusal: 403, the request comes from another origin, or says nothing of where it comes from.
    """
    headers = header_map(scope)
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        if site != b"same-origin":
            raise Refusal(403, "console forms are accepted from the console's own pages only")
        return
    origin = headers.get(b"origin")
    if origin is not None:
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if not host or urlsplit(origin.decode("latin-1")).netloc.lower() != host:
            raise Refusal(403, "console forms are accepted from the console's own origin only")
    elif b"authorization" not in headers:
        raise Refusal(403, "a console form must come with the Sec-Fetch-Site or Origin header browsers send")


class Gate:
    """Admits administrators: a bearer token in the ``Authorization`` header or in the console's cookie, verified
    by the application's authenticator, whose actor holds one of ``admins``."""

    def __init__(self, authenticate: Authenticator, admins: Collection[str]) -> None:
        self.authenticate = authenticate
        self.admins = frozenset(admins)

    async def actor(self, scope: Scope, receive: Receive) -> Actor:
        """Return the request's actor, the anonymous actor when it sends no credentials.

        Raises:
            Refusal: 401 (with the cookie cleared, if it sent one) for credentials the authenticator refuses.
        """
        if not any(name == b"authorization" for name, _ in scope["headers"]):
            token = cookie_token(scope)
            if token is not None:
                scope = with_bearer(scope, token)
        try:
            return await self.authenticate(Request(scope, receive))
        except Unauthenticated as exc:
            raise Refusal(401, f"the credentials were refused: {exc}", list(_BEARER)) from None
        except AccessDenied as exc:
            raise Refusal(403, str(exc)) from None
        except CitadelError as exc:
            found, _ = from_exception(exc)
            raise Refusal(found.status, found.detail or found.title) from None

    async def admit(self, scope: Scope, receive: Receive) -> Actor:
        """Return the request's actor, if it is an administrator.

        Raises:
            Refusal: 401 without credentials or with refused ones, 403 for another actor.
        """
        actor = await self.actor(scope, receive)
        if actor.subject == "anonymous":
            raise Refusal(401, "sign in with an administrator's token", list(_BEARER))
        if actor.roles.isdisjoint(self.admins):
            raise Refusal(403, f"the console is for administrators; {actor.subject} is not one")
        return actor
