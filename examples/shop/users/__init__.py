"""Users: registration and profiles."""

from __future__ import annotations

from citadel import Module
from examples.shop.users import contract
from examples.shop.users.contract import AssignRole, ForgetUser, GetUser, RegisterUser
from examples.shop.users.domain import RoleAssigned, UserForgotten, UserRegistered
from examples.shop.users.handlers import assign_role, forget_user, get_user, register_user, user_itself
from examples.shop.users.projections import Users


def module() -> Module:
    """Return a new users module (an application binds its projections, so build one per application)."""
    return Module(
        "users",
        package=__name__,
        contract=contract,
        commands={RegisterUser: register_user, AssignRole: assign_role, ForgetUser: forget_user},
        queries={GetUser: get_user},
        events=[UserRegistered, RoleAssigned, UserForgotten],
        projections=[Users()],
        owners={GetUser: user_itself},
    )
