"""A user's stream: registration, with the email and name rules. Pure."""

from __future__ import annotations

import re

from citadel import Aggregate, Command, DomainError, Event, InvalidCommand, decides, evolves

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
DEFAULT_ROLES = ("customer",)


class CreateUser(Command, name="users.CreateUser"):
    """Internal: ``RegisterUser`` with the id the handler chose."""

    user_id: str
    email: str
    name: str


class UserRegistered(Event, name="users.UserRegistered"):
    user_id: str
    email: str
    name: str
    roles: list[str]


class User(Aggregate):
    registered: bool = False

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

    @evolves
    def was_registered(self, event: UserRegistered) -> None:
        self.registered = True


USER = User.decider()
