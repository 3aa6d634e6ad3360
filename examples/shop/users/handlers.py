"""Users' command and query handlers."""

from __future__ import annotations

import msgspec

from citadel import CommandContext, NotFound, QueryContext
from examples.shop.users.contract import AssignRole, ForgetUser, GetUser, NewUser, RegisterUser, UserProfile
from examples.shop.users.domain import USER, CreateUser
from examples.shop.users.projections import Users


async def register_user(command: RegisterUser, ctx: CommandContext) -> NewUser:
    user_id = ctx.new_id()
    created = CreateUser(user_id=user_id, email=command.email, name=command.name)
    await ctx.execute(USER, f"user-{user_id}", created, new=True)  # a new id: no stream to read
    return NewUser(user_id=user_id)


async def forget_user(command: ForgetUser, ctx: CommandContext) -> None:
    if await ctx.execute(USER, f"user-{command.user_id}", command):
        ctx.forget(command.user_id)  # deletes the user's data key with the event: crypto-shredding


async def assign_role(command: AssignRole, ctx: CommandContext) -> None:
    await ctx.execute(USER, f"user-{command.user_id}", command)


async def user_itself(message: GetUser, ctx: QueryContext) -> str:
    """A user's profile belongs to that user."""
    return message.user_id


async def get_user(query: GetUser, ctx: QueryContext) -> UserProfile:
    row = await ctx.view(Users.users).get(query.user_id)
    if row is None:
        raise NotFound(f"no user {query.user_id}")
    return msgspec.convert(row, UserProfile, from_attributes=True)
