"""Who may use the console: administrators only, by bearer token or by the login form's cookie; and every form
post comes from the console's own origin (no cross-site request forgery)."""

from __future__ import annotations

import pytest

from tests.e2e.shopper import token

from .conftest import ADMIN, MEMBER, ORIGIN, SAME_ORIGIN, Shop

PAGES = ["/console", "/console/streams", "/console/event?position=1", "/console/consumers", "/console/dead-letters"]
PAGES += ["/console/deployment", "/console/rebuild?projection=users.Users"]
POSTS = [("/console/rebuild", {"projection": "users.Users"}), ("/console/dead-letters", {"action": "retry"})]


@pytest.mark.parametrize("path", PAGES)
async def test_an_anonymous_visitor_gets_the_login_form_with_401(shop: Shop, path: str) -> None:
    response = await shop.client.get(path)

    assert response.status_code == 401
    assert 'name="token"' in response.text
    assert "orders.OrderCreated" not in response.text
    assert "billing" not in response.text


@pytest.mark.parametrize("path", PAGES)
async def test_a_member_who_is_no_administrator_gets_403(shop: Shop, path: str) -> None:
    response = await shop.client.get(path, headers=MEMBER)

    assert response.status_code == 403
    assert "for administrators" in response.text


async def test_the_progress_of_a_rebuild_refuses_others_with_a_problem_document(shop: Shop) -> None:
    anonymous = await shop.client.get("/console/rebuild.json", params={"projection": "users.Users"})
    member = await shop.client.get("/console/rebuild.json", params={"projection": "users.Users"}, headers=MEMBER)

    assert (anonymous.status_code, member.status_code) == (401, 403)
    assert anonymous.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("path", "form"), POSTS)
async def test_a_post_without_an_administrator_is_refused(shop: Shop, path: str, form: dict[str, str]) -> None:
    anonymous = await shop.client.post(path, data=form, headers=SAME_ORIGIN)
    member = await shop.client.post(path, data=form, headers={**SAME_ORIGIN, **MEMBER})

    assert (anonymous.status_code, member.status_code) == (401, 403)


async def test_a_forged_or_expired_token_is_401_whether_sent_as_header_or_cookie(shop: Shop) -> None:
    forged = token("ops", "admin")[:-4] + "AAAA"

    header = await shop.client.get("/console", headers={"authorization": f"Bearer {forged}"})
    cookie = await shop.client.get("/console", headers={"cookie": f"citadel_console={forged}"})

    assert (header.status_code, cookie.status_code) == (401, 401)


async def test_a_cookie_that_is_not_a_token_counts_as_no_credentials(shop: Shop) -> None:
    response = await shop.client.get("/console", headers={"cookie": 'citadel_console="<script>"; other=1'})

    assert response.status_code == 401
    assert "<script>" not in response.text


async def test_logging_in_keeps_the_token_in_an_http_only_same_site_strict_cookie(shop: Shop) -> None:
    admin = token("ops", "admin")

    response = await shop.client.post("/console/login", data={"token": admin}, headers=SAME_ORIGIN)

    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    cookie = response.headers["set-cookie"]
    assert cookie == f"citadel_console={admin}; Path=/console; HttpOnly; SameSite=Strict"
    page = await shop.client.get("/console/consumers", headers={"cookie": f"citadel_console={admin}"})
    assert page.status_code == 200


async def test_the_cookie_is_secure_when_the_console_is_served_over_tls(shop: Shop) -> None:
    response = await shop.client.post(
        "https://shop/console/login", data={"token": token("ops", "admin")}, headers={"origin": "https://shop"}
    )

    assert response.status_code == 303
    assert response.headers["set-cookie"].endswith("; HttpOnly; SameSite=Strict; Secure")


@pytest.mark.parametrize(
    ("given", "status"), [(token("ann", "member"), 403), ("not a token <b>", 401), ("x" * 5000, 401), ("", 401)]
)
async def test_logging_in_with_another_token_sets_no_cookie(shop: Shop, given: str, status: int) -> None:
    response = await shop.client.post("/console/login", data={"token": given}, headers=SAME_ORIGIN)

    assert response.status_code == status
    assert "set-cookie" not in response.headers
    assert "<b>" not in response.text


async def test_logging_out_clears_the_cookie(shop: Shop) -> None:
    response = await shop.client.post("/console/logout", headers=SAME_ORIGIN)

    assert response.status_code == 303
    assert response.headers["set-cookie"].startswith("citadel_console=; Path=/console; HttpOnly")
    assert response.headers["set-cookie"].endswith("Max-Age=0")


async def test_the_login_page_sends_a_signed_in_administrator_to_the_console(shop: Shop) -> None:
    anonymous = await shop.client.get("/console/login")
    admin = await shop.client.get("/console/login", headers=ADMIN)

    assert (anonymous.status_code, admin.status_code) == (200, 303)


CROSS_SITE = [
    {"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    {"origin": "https://evil.example"},
    {"sec-fetch-site": "same-site"},
    {"origin": "null"},
    {},
]


@pytest.mark.parametrize("headers", CROSS_SITE, ids=["cross-site", "other-origin", "same-site", "null-origin", "none"])
async def test_a_form_post_with_the_cookie_from_another_origin_is_refused(shop: Shop, headers: dict[str, str]) -> None:
    cookie = {"cookie": f"citadel_console={token('ops', 'admin')}"}
    before = await shop.app.store.checkpoint("analytics.RevenueTotals")

    response = await shop.client.post(
        "/console/rebuild", data={"projection": "analytics.RevenueTotals"}, headers={**cookie, **headers}
    )

    assert response.status_code == 403
    assert await shop.app.store.checkpoint("analytics.RevenueTotals") == before  # nothing was reset


@pytest.mark.parametrize("headers", CROSS_SITE[:4], ids=["cross-site", "other-origin", "same-site", "null-origin"])
async def test_logging_in_and_out_from_another_origin_is_refused(shop: Shop, headers: dict[str, str]) -> None:
    login = await shop.client.post("/console/login", data={"token": token("ops", "admin")}, headers=headers)
    logout = await shop.client.post("/console/logout", headers=headers)

    assert (login.status_code, logout.status_code) == (403, 403)
    assert "set-cookie" not in login.headers
    assert "set-cookie" not in logout.headers


async def test_a_same_origin_post_is_accepted_with_the_null_origin_of_a_page_that_sends_no_referrer(
    shop: Shop,
) -> None:
    cookie = {"cookie": f"citadel_console={token('ops', 'admin')}", "origin": "null", "sec-fetch-site": "same-origin"}

    response = await shop.client.post("/console/rebuild", data={"projection": "users.Users"}, headers=cookie)

    assert response.status_code == 303


async def test_the_same_form_post_from_the_consoles_origin_is_accepted(shop: Shop) -> None:
    cookie = {"cookie": f"citadel_console={token('ops', 'admin')}", "origin": ORIGIN}

    response = await shop.client.post("/console/rebuild", data={"projection": "users.Users"}, headers=cookie)

    assert response.status_code == 303


@pytest.mark.parametrize("path", ["/console/rebuild", "/console/dead-letters", "/console/logout", "/console/login"])
async def test_actions_are_post_only(shop: Shop, path: str) -> None:
    response = await shop.client.request("PUT", path, headers=ADMIN)

    assert response.status_code == 405


async def test_logging_out_by_get_is_refused(shop: Shop) -> None:
    response = await shop.client.get("/console/logout", headers=ADMIN)

    assert response.status_code == 405
