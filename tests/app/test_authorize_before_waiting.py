"""A query with ``min_position`` waits only for a caller allowed to ask it: the role-level check comes first.

The position asked for is far beyond the log and the wait is 20 s: a caller allowed to ask is told at once that
no write has that position; one that may not ask is refused before that (either answer arrives long before the
3 s timeout around it). A position in the log that the read models have not reached is waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from mini import GetRevenue, PlaceOrder, build, unprocessed_position

from citadel import AccessDenied, Actor, Application, DispatchContext
from citadel.errors import NotCaughtUp, PositionNotWritten, Unauthenticated
from citadel.security import Policy
from citadel.testing import running

FAR_AHEAD = 999_999_999
NOT_WAITING = 3.0


def far_ahead(actor: Actor, wait: float = 20.0) -> DispatchContext:
    return DispatchContext(actor=actor, min_position=FAR_AHEAD, wait=wait)


@pytest.fixture
async def guarded(store_url: str) -> AsyncIterator[Application]:
    policy = Policy().allow("analyst", GetRevenue).allow("clerk", PlaceOrder)
    async with running(build(policy=policy), store=store_url) as started:
        yield started


async def test_an_anonymous_caller_far_ahead_is_refused_as_unauthenticated_without_waiting(
    guarded: Application,
) -> None:
    with pytest.raises(Unauthenticated):
        await asyncio.wait_for(guarded.query(GetRevenue(), far_ahead(Actor("anonymous"))), NOT_WAITING)


async def test_a_role_without_the_permission_is_refused_as_forbidden_without_waiting(guarded: Application) -> None:
    caller = Actor("ann", frozenset({"customer"}))
    with pytest.raises(AccessDenied):
        await asyncio.wait_for(guarded.query(GetRevenue(), far_ahead(caller)), NOT_WAITING)


async def test_a_role_with_the_permission_is_told_at_once_that_no_write_has_a_position_beyond_the_log(
    guarded: Application,
) -> None:
    with pytest.raises(PositionNotWritten):
        await asyncio.wait_for(
            guarded.query(GetRevenue(), far_ahead(Actor("bob", frozenset({"analyst"})))), NOT_WAITING
        )


async def test_a_role_with_the_permission_still_waits_for_a_written_position(guarded: Application) -> None:
    position = await unprocessed_position(guarded, DispatchContext(actor=Actor("cy", frozenset({"clerk"}))))
    waiting = DispatchContext(actor=Actor("bob", frozenset({"analyst"})), min_position=position, wait=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NotCaughtUp):
        await guarded.query(GetRevenue(), waiting)
    assert loop.time() - started >= 0.3


async def test_without_a_policy_an_anonymous_caller_waits_as_before(store_url: str) -> None:
    async with running(build(), store=store_url) as app:
        position = await unprocessed_position(app)
        with pytest.raises(NotCaughtUp):
            await app.query(GetRevenue(), DispatchContext(actor=Actor("anonymous"), min_position=position, wait=0.1))


def policy() -> Policy:
    found = Policy(superusers=("root",)).allow("analyst", "analytics.*").allow("customer", "orders.GetOrder", own=True)
    found.resolve(lambda message_type: message_type.__name__)
    return found


@pytest.mark.parametrize(
    ("actor", "permission", "reach"),
    [
        (Actor("ops", frozenset({"root"})), "billing.GetInvoice", "all"),
        (Actor("bob", frozenset({"analyst"})), "analytics.GetRevenue", "all"),
        (Actor("ann", frozenset({"customer"})), "orders.GetOrder", "own"),
    ],
    ids=["superuser", "granted", "owner check to come"],
)
def test_precheck_lets_through_who_may_ask_and_says_whether_ownership_is_still_to_check(
    actor: Actor, permission: str, reach: str
) -> None:
    assert policy().precheck(actor, permission) == reach


@pytest.mark.parametrize(
    ("actor", "permission", "refusal"),
    [
        (Actor("anonymous"), "analytics.GetRevenue", Unauthenticated),
        (Actor("anonymous"), "orders.GetOrder", Unauthenticated),
        (Actor("ann", frozenset({"customer"})), "analytics.GetRevenue", AccessDenied),
        (Actor("ops", frozenset({"admin"})), "billing.GetInvoice", AccessDenied),
    ],
    ids=["anonymous", "anonymous on an own grant", "role without it", "admin is no superuser here"],
)
def test_precheck_refuses_who_may_not_ask_at_all(actor: Actor, permission: str, refusal: type[Exception]) -> None:
    with pytest.raises(refusal):
        policy().precheck(actor, permission)
