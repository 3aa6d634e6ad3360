"""Each kind of response gets the narrowest content security policy that lets it work: the API none at all,
the docs page and the console their own scripts and styles, their assets nothing, and HSTS over HTTPS only."""

from __future__ import annotations

import pytest

from citadel.http.headers import security_headers


def policy(path: str, scheme: str = "http") -> str:
    found = dict(security_headers(path, scheme))
    return found[b"content-security-policy"].decode()


@pytest.mark.parametrize("path", ["/orders/create-order", "/", "/consoles", "/docsx", "/orders/assets/x.js"])
def test_the_api_may_load_nothing(path: str) -> None:
    assert policy(path) == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("path", ["/console", "/console/streams", "/console/rebuild.json", "/shop/console/letters"])
def test_the_console_loads_only_its_own_script_and_style_and_posts_only_to_itself(path: str) -> None:
    found = policy(path)
    assert "script-src 'self'" in found
    assert "style-src 'self'" in found
    assert "form-action 'self'" in found
    assert "'unsafe-inline'" not in found
    assert "frame-ancestors 'none'" in found
    assert dict(security_headers(path, "http"))[b"cache-control"] == b"no-store"


@pytest.mark.parametrize("path", ["/console/assets/console.js", "/docs/assets/swagger-ui.css"])
def test_assets_may_load_nothing_themselves(path: str) -> None:
    assert policy(path) == "default-src 'none'; frame-ancestors 'none'"


def test_hsts_only_over_https() -> None:
    assert b"strict-transport-security" not in dict(security_headers("/console", "http"))
    assert b"strict-transport-security" in dict(security_headers("/console", "https"))
