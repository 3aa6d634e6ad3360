"""A small application whose public event carries personal data, for forgetting across services.

``accounts`` owns its data subjects: ``AccountOpened`` (an email and a name) is public and declares the account as
its subject, so it travels sealed with the account's key. ``mailing``, in another service, imports it and keeps a
row with the email; it drops the row when the subject is forgotten (its own ``RecipientForgotten``, a subclass of
``citadel.SubjectForgotten``). Each service has a store and master keys of its own; they share service keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from citadel import Application, Command, CommandContext, Event, Module, Projector, Query, QueryContext, View
from citadel.messages import SubjectForgotten
from citadel.messaging.nats import NatsBroker
from citadel.messaging.signing import ServiceKeys
from citadel.security.encryption import Keyring, MasterKeys

SERVICES = {"accounts": ["accounts"], "mailing": ["mailing"]}


class OpenAccount(Command, name="accounts.OpenAccount"):
    email: str
    name: str


class ForgetAccount(Command, name="accounts.ForgetAccount"):
    account_id: str


class AccountOpened(Event, name="accounts.AccountOpened", subject="account_id"):
    account_id: str
    email: str
    name: str


class AccountClosed(Event, name="accounts.AccountClosed"):
    account_id: str


class GetAccount(Query, name="accounts.GetAccount"):
    account_id: str


class GetRecipient(Query, name="mailing.GetRecipient"):
    account_id: str


class Opened(msgspec.Struct, frozen=True):
    account_id: str


class Row(msgspec.Struct):
    account_id: str
    email: str
    name: str


class RecipientForgotten(SubjectForgotten, name="mailing.RecipientForgotten"):
    """Appended in mailing's service whenever a subject is forgotten there."""


class Accounts(Projector):
    accounts = View("accounts", Row)

    def handle_accountopened(self, event: AccountOpened) -> None:
        self.accounts[event.account_id] = Row(account_id=event.account_id, email=event.email, name=event.name)

    def handle_accountclosed(self, event: AccountClosed) -> None:
        self.accounts[event.account_id] = Row(account_id=event.account_id, email="", name="")


class Recipients(Projector):
    recipients = View("recipients", Row)

    def handle_accountopened(self, event: AccountOpened) -> None:
        self.recipients[event.account_id] = Row(account_id=event.account_id, email=event.email, name=event.name)

    def handle_recipientforgotten(self, event: RecipientForgotten) -> None:
        del self.recipients[event.subject]


async def open_account(command: OpenAccount, ctx: CommandContext) -> Opened:
    account_id = ctx.new_id()
    ctx.append(f"account-{account_id}", [AccountOpened(account_id=account_id, email=command.email, name=command.name)])
    return Opened(account_id)


async def forget_account(command: ForgetAccount, ctx: CommandContext) -> None:
    ctx.append(f"account-{command.account_id}", [AccountClosed(account_id=command.account_id)])
    ctx.forget(command.account_id)


async def get_account(query: GetAccount, ctx: QueryContext) -> Row | None:
    return await ctx.view(Accounts.accounts).get(query.account_id)


async def get_recipient(query: GetRecipient, ctx: QueryContext) -> Row | None:
    return await ctx.view(Recipients.recipients).get(query.account_id)


def mailing_app(store: str, keyring: Keyring | None = None) -> Application:
    """Both modules; a service runs one of them."""
    accounts = Module(
        "accounts",
        contract=[OpenAccount, ForgetAccount, GetAccount, AccountOpened],
        commands={OpenAccount: open_account, ForgetAccount: forget_account},
        queries={GetAccount: get_account},
        events=[AccountClosed],
        projections=[Accounts()],
    )
    mailing = Module(
        "mailing",
        contract=[GetRecipient],
        queries={GetRecipient: get_recipient},
        events=[RecipientForgotten],
        projections=[Recipients()],
        depends_on=["accounts"],
    )
    return Application([accounts, mailing], store=store, keyring=keyring)


@dataclass
class Pair:
    """The two running services, and what they were given."""

    accounts: Application
    mailing: Application
    broker: str
    keys: ServiceKeys


@contextlib.asynccontextmanager
async def two_services(stores: dict[str, str], broker: str, keys: ServiceKeys | None = None) -> AsyncIterator[Pair]:
    """accounts and mailing as services over ``broker``, on ``stores`` (by service), with master keys of their own."""
    keys = keys or ServiceKeys.generate()
    started: dict[str, Application] = {}
    try:
        for name, modules in SERVICES.items():
            app = mailing_app(stores[name], Keyring(MasterKeys.generate()))
            await app.start(modules=modules, broker=NatsBroker(broker, keys=keys))
            started[name] = app
        yield Pair(started["accounts"], started["mailing"], broker, keys)
    finally:
        for app in reversed(started.values()):
            await app.stop()
