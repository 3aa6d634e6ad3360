"""A one-module application whose every kind of stored record holds a person's email and name, on purpose: events,
a snapshot (every three events, so the commit that forgets takes one), a command result, a view row (replaced
by a forgotten marker), and, through a mailer that keeps failing, a dead letter."""

from __future__ import annotations

import msgspec

from citadel import (
    Aggregate,
    Application,
    Command,
    CommandContext,
    Event,
    Module,
    NotFound,
    ProjectionContext,
    Projector,
    View,
    decides,
    evolves,
)


class RegisterPerson(Command, name="people.RegisterPerson"):
    email: str
    name: str


class RenamePerson(Command, name="people.RenamePerson"):
    person_id: str
    name: str


class ForgetPerson(Command, name="people.ForgetPerson"):
    person_id: str


class PersonRegistered(Event, name="people.PersonRegistered", subject="person_id"):
    person_id: str
    email: str
    name: str


class PersonRenamed(Event, name="people.PersonRenamed", subject="person_id"):
    person_id: str
    name: str


class PersonForgotten(Event, name="people.PersonForgotten"):
    """Sealed with the module's key: it stays readable after the person's key is deleted."""

    person_id: str


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """What registering returns: the email and name again, so the idempotency record's result holds them."""

    person_id: str
    email: str
    name: str


class Person(Aggregate):
    """Keeps the email and name even once forgotten, so the snapshot the forgetting commit takes holds them."""

    email: str = ""
    name: str = ""
    forgotten: bool = False

    @decides
    def rename(self, command: RenamePerson) -> list[Event]:
        if not self.email or self.forgotten:
            raise NotFound(f"no person {command.person_id}")
        return [PersonRenamed(person_id=command.person_id, name=command.name)]

    @decides
    def forget(self, command: ForgetPerson) -> list[Event]:
        if not self.email or self.forgotten:
            raise NotFound(f"no person {command.person_id}")
        return [PersonForgotten(person_id=command.person_id)]

    @evolves
    def registered(self, event: PersonRegistered) -> None:
        self.email, self.name = event.email, event.name

    @evolves
    def renamed(self, event: PersonRenamed) -> None:
        self.name = event.name

    @evolves
    def was_forgotten(self, event: PersonForgotten) -> None:
        self.forgotten = True


PERSON = Person.decider(snapshot_every=3)


class PersonRow(msgspec.Struct, kw_only=True):
    person_id: str
    email: str
    name: str
    forgotten: bool = False


class People(Projector):
    """Inline; unique by email, so the email is in an index too."""

    people = View("people", PersonRow, unique=("email",))

    def handle_personregistered(self, event: PersonRegistered, ctx: ProjectionContext) -> None:
        ctx.view(self.people)[event.person_id] = PersonRow(
            person_id=event.person_id, email=event.email, name=event.name
        )

    def handle_personrenamed(self, event: PersonRenamed, ctx: ProjectionContext) -> None:
        ctx.view(self.people).merge(event.person_id, name=event.name)

    def handle_personforgotten(self, event: PersonForgotten, ctx: ProjectionContext) -> None:
        ctx.view(self.people)[event.person_id] = PersonRow(
            person_id=event.person_id, email=f"forgotten:{event.person_id}", name="", forgotten=True
        )


def mailer() -> Projector:
    """A projection that follows the log and fails on every registration, quoting the email and name."""
    projector = Projector("people.mailer", inline=False)

    @projector.on(PersonRegistered)
    def mail(event: PersonRegistered) -> None:
        raise ValueError(f"no mailbox for {event.email} ({event.name})")

    return projector


async def register_person(command: RegisterPerson, ctx: CommandContext) -> Registration:
    person_id = ctx.new_id()
    registered = PersonRegistered(person_id=person_id, email=command.email, name=command.name)
    ctx.append(f"person-{person_id}", [registered], 0)
    return Registration(person_id=person_id, email=command.email, name=command.name)


async def rename_person(command: RenamePerson, ctx: CommandContext) -> None:
    await ctx.execute(PERSON, f"person-{command.person_id}", command)


async def forget_person(command: ForgetPerson, ctx: CommandContext) -> None:
    await ctx.execute(PERSON, f"person-{command.person_id}", command)
    ctx.forget(command.person_id)


def build(**options: object) -> Application:
    """A new people application (its projections are bound to it); ``options`` go to ``Application``."""
    module = Module(
        "people",
        commands={RegisterPerson: register_person, RenamePerson: rename_person, ForgetPerson: forget_person},
        events=[PersonRegistered, PersonRenamed, PersonForgotten],
        projections=[People(), mailer()],
    )
    return Application([module], **options)  # type: ignore[arg-type]
