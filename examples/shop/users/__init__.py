"""Users: registration and profiles."""

from __future__ import annotations

from citadel import Module
from examples.shop.users import contract
from examples.shop.users.contract import GetUser, RegisterUser
from examples.shop.users.domain import UserRegistered
from examples.shop.users.handlers import get_user, register_user
from examples.shop.users.projections import Users


def module() -> Module:
    """Return a new users module (an application binds its projections, so build one per application)."""
    return Module(
        "users",
        package=__name__,
        contract=contract,
        commands={RegisterUser: register_user},
        queries={GetUser: get_user},
        events=[UserRegistered],
        projections=[Users()],
    )
