"""The users read model: one row per user, unique by lowercased email."""

from __future__ import annotations

import msgspec

from citadel import ProjectionContext, Projector, View
from examples.shop.users.domain import RoleAssigned, UserForgotten, UserRegistered


class UserRow(msgspec.Struct, kw_only=True):
    user_id: str
    email: str
    name: str
    roles: list[str]
    forgotten: bool = False


class Users(Projector):
    """Inline, so a second registration of an email fails in the same transaction (``UniqueViolation``)."""

    users = View("users", UserRow, unique=("email",))

    def handle_userregistered(self, event: UserRegistered, ctx: ProjectionContext) -> None:
        ctx.view(self.users)[event.user_id] = UserRow(
            user_id=event.user_id, email=event.email, name=event.name, roles=event.roles
        )

    def handle_userforgotten(self, event: UserForgotten, ctx: ProjectionContext) -> None:
        # A whole row, not a merge: a rebuild, which cannot read the forgotten registration, ends the same.
        ctx.view(self.users)[event.user_id] = UserRow(
            user_id=event.user_id, email=f"forgotten:{event.user_id}", name="", roles=[], forgotten=True
        )

    async def handle_roleassigned(self, event: RoleAssigned, ctx: ProjectionContext) -> None:
        users = ctx.view(self.users)
        row = await users.get(event.user_id)
        if row is not None:
            users.merge(event.user_id, roles=[*row.roles, event.role])
