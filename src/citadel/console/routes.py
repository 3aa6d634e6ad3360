"""The console's routes: every page and action behind the gate, the login and logout forms, the assets.

Every route is an exact path (parameters travel in the query string or the form), so the console is served by the
same dictionary lookup as the rest of the application. State-changing actions accept POST only, from the
console's own origin (``gate.check_same_origin``). A refusal is a page saying why, with its 4xx status; a store
that cannot be read is a 503 page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope

from citadel.console.gate import Gate, check_same_origin, clear_cookie, login_cookie, valid_token, with_bearer
from citadel.console.pages import Pages
from citadel.console.rendering import assets, page, serve_asset
from citadel.console.web import Call, Refusal, query_of, read_form, redirect
from citadel.context import ANONYMOUS
from citadel.errors import ConfigurationError, NotFound, StoreError
from citadel.http.endpoints import replay
from citadel.http.problems import problem
from citadel.http.raw import Reply, problem_reply
from citadel.http.routing import Endpoint

if TYPE_CHECKING:
    from citadel.app import Application
    from citadel.http.endpoints import Authenticator

__all__ = ["CONSOLE_PATH", "console_routes"]

CONSOLE_PATH = "/console"
Handler = Callable[[Call], Awaitable[Reply]]


def _base(scope: Scope) -> str:
    return str(scope.get("root_path", "")) + CONSOLE_PATH


def _refused(refusal: Refusal, base: str, *, as_json: bool) -> Reply:
    if as_json:
        found = problem(refusal.status, "console-refusal", "Refused", refusal.message)
        return problem_reply(found, refusal.headers)
    template = "login.html" if refusal.status == 401 else "refused.html"
    status, body, kind, headers = page(template, base, refusal.status, message=refusal.message, signed_in=False)
    return status, body, kind, [*headers, *refusal.headers]


def guarded(gate: Gate, handler: Handler, *, post: bool = False, as_json: bool = False) -> Endpoint:
    """The endpoint of ``handler``: for administrators only; a ``post`` reads its form, from the console's origin."""

    async def endpoint(scope: Scope, receive: Receive) -> Reply:
        base = _base(scope)
        try:
            params = query_of(scope)
            form: dict[str, list[str]] = {}
            if post:
                check_same_origin(scope)
                form, body = await read_form(scope, receive)
                receive = replay(body, receive)
            actor = await gate.admit(scope, receive)
            return await handler(Call(scope, params, actor, base, form))
        except Refusal as refusal:
            return _refused(refusal, base, as_json=as_json)
        except NotFound as exc:
            return _refused(Refusal(404, str(exc)), base, as_json=as_json)
        except ConfigurationError as exc:  # a letter of a consumer that does not run here, say
            return _refused(Refusal(409, str(exc)), base, as_json=as_json)
        except StoreError:
            return _refused(Refusal(503, "the store cannot be read now; retry shortly"), base, as_json=as_json)

    return endpoint


def _login_page(gate: Gate) -> Endpoint:
    async def endpoint(scope: Scope, receive: Receive) -> Reply:
        base = _base(scope)
        try:
            actor = await gate.actor(scope, receive)
        except Refusal:
            actor = ANONYMOUS
        if actor.subject != "anonymous" and not actor.roles.isdisjoint(gate.admins):
            return redirect(base)
        return page("login.html", base, message="", signed_in=False)

    return endpoint


def _login(gate: Gate) -> Endpoint:
    """Take a token from the login form; keep it in the console's cookie when it is an administrator's."""

    async def endpoint(scope: Scope, receive: Receive) -> Reply:
        base = _base(scope)
        try:
            check_same_origin(scope)
            form, body = await read_form(scope, receive)
            token = (form.get("token") or [""])[-1].strip()
            if not valid_token(token):
                raise Refusal(401, "paste a bearer token: letters, digits and . _ ~ + / = - only")
            await gate.admit(with_bearer(scope, token), replay(body, receive))
        except Refusal as refusal:
            return _refused(refusal, base, as_json=False)
        status, body, kind, headers = redirect(base)
        return status, body, kind, [*headers, (b"set-cookie", login_cookie(token, base, scope).encode("latin-1"))]

    return endpoint


def _logout() -> Endpoint:
    async def endpoint(scope: Scope, receive: Receive) -> Reply:
        base = _base(scope)
        try:
            check_same_origin(scope)
        except Refusal as refusal:
            return _refused(refusal, base, as_json=False)
        status, body, kind, headers = redirect(f"{base}/login")
        return status, body, kind, [*headers, (b"set-cookie", clear_cookie(base, scope).encode("latin-1"))]

    return endpoint


def console_routes(
    application: Application,
    authenticate: Authenticator,
    admins: Collection[str],
    taken: Sequence[tuple[str, str, Endpoint]] = (),
) -> list[tuple[str, str, Endpoint]]:
    """Return the routes (method, path, endpoint) of ``application``'s console at ``/console``, for actors that
    ``authenticate`` finds holding one of the ``admins`` roles.

    Raises:
        ConfigurationError: one of ``taken`` (the application's other routes) has a path of the console.
    """
    gate, pages = Gate(authenticate, admins), Pages(application)
    path = CONSOLE_PATH
    routes: list[tuple[str, str, Endpoint]] = [
        ("GET", path, guarded(gate, pages.modules)),
        ("GET", f"{path}/streams", guarded(gate, pages.streams)),
        ("GET", f"{path}/event", guarded(gate, pages.event)),
        ("GET", f"{path}/consumers", guarded(gate, pages.consumers)),
        ("POST", f"{path}/rebuild", guarded(gate, pages.rebuild, post=True)),
        ("GET", f"{path}/rebuild", guarded(gate, pages.rebuild_page)),
        ("GET", f"{path}/rebuild.json", guarded(gate, pages.rebuild_progress, as_json=True)),
        ("GET", f"{path}/dead-letters", guarded(gate, pages.dead_letters)),
        ("POST", f"{path}/dead-letters", guarded(gate, pages.act_on_letters, post=True)),
        ("GET", f"{path}/deployment", guarded(gate, pages.deployment)),
        ("GET", f"{path}/login", _login_page(gate)),
        ("POST", f"{path}/login", _login(gate)),
        ("POST", f"{path}/logout", _logout()),
        *(("GET", f"{path}/assets/{name}", serve_asset(asset)) for name, asset in assets().items()),
    ]
    mine = {(method, route) for method, route, _ in routes}
    clash = sorted(f"{method} {route}" for method, route, _ in taken if (method, route) in mine)
    if clash:
        raise ConfigurationError(f"the console's routes clash with the application's: {', '.join(clash)}")
    return routes
