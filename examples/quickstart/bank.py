# examples/quickstart/bank.py
import asyncio
from typing import Any

from citadel import (
    NO_STREAM,
    Aggregate,
    Application,
    Command,
    CommandContext,
    DomainError,
    Event,
    Module,
    ProjectionContext,
    Projector,
    Query,
    QueryContext,
    View,
    decides,
    evolves,
)


# The contract: messages other modules may use.
class OpenAccount(Command, name="bank.OpenAccount"):
    owner: str


class Deposit(Command, name="bank.Deposit"):
    account_id: str
    amount: int


class GetAccount(Query, name="bank.GetAccount"):
    account_id: str


class AccountOpened(Event, name="bank.AccountOpened"):
    account_id: str
    owner: str


class Deposited(Event, name="bank.Deposited"):
    account_id: str
    amount: int


# Pure domain code: decide on commands, evolve on events. No I/O.
class Account(Aggregate):
    balance: int = 0
    opened: bool = False

    @decides
    def deposit(self, command: Deposit) -> list[Event]:
        if not self.opened:
            raise DomainError("no such account")
        if command.amount <= 0:
            raise DomainError("deposits are positive")
        return [Deposited(account_id=command.account_id, amount=command.amount)]

    @evolves
    def was_opened(self, event: AccountOpened) -> None:
        self.opened = True

    @evolves
    def was_deposited(self, event: Deposited) -> None:
        self.balance += event.amount


ACCOUNT = Account.decider()


# A read model, written in the same transaction as the events (handle_<event class name, lowercase>).
class Balances(Projector):
    accounts = View("accounts", indexes=("owner",))

    def handle_accountopened(self, event: AccountOpened, ctx: ProjectionContext) -> None:
        ctx.view(self.accounts)[event.account_id] = {"owner": event.owner, "balance": 0}

    def handle_deposited(self, event: Deposited, ctx: ProjectionContext) -> None:
        ctx.view(self.accounts).increment(event.account_id, "balance", event.amount)


# Handlers: the framework loads, commits, retries on conflicts, and stores idempotency records.
async def open_account(command: OpenAccount, ctx: CommandContext) -> dict[str, str]:
    account_id = ctx.new_id()
    ctx.append(f"account-{account_id}", [AccountOpened(account_id=account_id, owner=command.owner)], NO_STREAM)
    return {"account_id": account_id}


async def deposit(command: Deposit, ctx: CommandContext) -> None:
    await ctx.execute(ACCOUNT, f"account-{command.account_id}", command)


async def get_account(query: GetAccount, ctx: QueryContext) -> dict[str, Any] | None:
    return await ctx.view(Balances.accounts).get(query.account_id)


bank = Module(
    "bank",
    package=__name__,
    contract=[OpenAccount, Deposit, GetAccount, AccountOpened, Deposited],  # what HTTP and other modules see
    commands={OpenAccount: open_account, Deposit: deposit},
    queries={GetAccount: get_account},
    events=[AccountOpened, Deposited],
    projections=[Balances()],
)


app = Application([bank], store="sqlite:///var/bank.db")  # what `citadel serve examples.quickstart.bank:app` serves


async def main(store: str) -> dict[str, Any] | None:
    async with Application([bank], store=store) as running:
        opened = await running.dispatch(OpenAccount(owner="ada"))
        await running.dispatch(Deposit(account_id=opened["account_id"], amount=250))
        return await running.query(GetAccount(account_id=opened["account_id"]))


if __name__ == "__main__":  # python -m examples.quickstart.bank
    print(asyncio.run(main("sqlite:///var/bank-script.db")))  # {'owner': 'ada', 'balance': 250}
