"""A user's stream: registration, with the email and name rules. Pure."""

from __future__ import annotations

import re

import msgspec

from citadel import Aggregate, Command, DomainError, Event, InvalidCommand, NotFound, decides, evolves
from examples.shop.users.contract import AssignRole, ForgetUser

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
DEFAULT_ROLES = ("customer",)
ROLES = frozenset({"customer", "editor", "admin"})


class CreateUser(Command, name="users.CreateUser"):
    """Internal: ``RegisterUser`` with the id the handler chose."""

    user_id: str
    email: str
    name: str


class UserRegistered(Event, name="users.UserRegistered", subject="user_id"):
    user_id: str
    email: str
    name: str
    roles: list[str]


class RoleAssigned(Event, name="users.RoleAssigned", subject="user_id"):
    user_id: str
    role: str


class UserForgotten(Event, name="users.UserForgotten"):
    """Sealed with the module's key, not the user's: it stays readable after the user's key is deleted."""

    user_id: str


class User(Aggregate):
    registered: bool = False
    forgotten: bool = False
    roles: list[str] = msgspec.field(default_factory=list)

    @decides
    def create(self, command: CreateUser) -> list[Event]:
        if self.registered:
            raise DomainError(f"user {command.user_id} is already registered")
        if not EMAIL.fullmatch(command.email):
            raise InvalidCommand(f"{command.email!r} is not an email address like name@example.com")
        if not command.name.strip():
            raise InvalidCommand("a user needs a name")
        return [
            UserRegistered(
                user_id=command.user_id,
                email=command.email.lower(),
                name=command.name.strip(),
                roles=list(DEFAULT_ROLES),
            )
        ]

    @decides
    def forget(self, command: ForgetUser) -> list[Event]:
        if self.forgotten:
            return []
        if not self.registered:
            raise NotFound(f"no user {command.user_id}")
        return [UserForgotten(user_id=command.user_id)]

    @decides
    def assign(self, command: AssignRole) -> list[Event]:
        if not self.registered or self.forgotten:
            raise NotFound(f"no user {command.user_id}")
        if command.role not in ROLES:
            raise InvalidCommand(f"unknown role {command.role!r}; roles are {', '.join(sorted(ROLES))}")
        if command.role in self.roles:
            return []
        return [RoleAssigned(user_id=command.user_id, role=command.role)]

    @evolves
    def was_registered(self, event: UserRegistered) -> None:
        self.registered = True
        self.roles = list(event.roles)

    @evolves
    def was_assigned(self, event: RoleAssigned) -> None:
        self.roles.append(event.role)

    @evolves
    def was_forgotten(self, event: UserForgotten) -> None:
        self.forgotten = True
        self.roles = []


USER = User.decider()
