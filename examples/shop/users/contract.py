"""The users contract: register a user and look one up."""

from __future__ import annotations

import msgspec

from citadel import Command, Query
from citadel.types import Email, Id, Name


class RegisterUser(Command, name="users.RegisterUser"):
    """Register a customer; emails are unique, compared case-insensitively."""

    email: Email
    name: Name


class AssignRole(Command, name="users.AssignRole"):
    """Give a user a role (``customer``, ``editor``, ``admin``); admins only."""

    user_id: Id
    role: Name


class ForgetUser(Command, name="users.ForgetUser"):
    """Erase what the shop knows of a person: their events stay, unreadable for good. Admins only."""

    user_id: Id


class GetUser(Query, name="users.GetUser"):
    """A user's profile; ``NotFound`` if there is none."""

    user_id: Id


class NewUser(msgspec.Struct, frozen=True, kw_only=True):
    """What ``RegisterUser`` returns."""

    user_id: str


class UserProfile(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GetUser`` returns; ``email`` is lowercased; a forgotten user has no email, name or roles."""

    user_id: str
    email: str
    name: str
    roles: list[str]
    forgotten: bool = False
