"""What every command shares: the consoles, the argument types, loading settings and the application, and
turning a ``CitadelError`` into one line on standard error and exit status 2."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from citadel.app import Application
from citadel.config import Settings, load_settings
from citadel.errors import CitadelError
from citadel.loading import load_application
from citadel.setup import place, tune
from citadel.store.url import check_store_url, sqlite_path

__all__ = [
    "AppArg",
    "BrokerOpt",
    "LetterArg",
    "ModulesOpt",
    "StoreOpt",
    "application_of",
    "err",
    "fail",
    "out",
    "run_with",
    "settings_of",
]

T = TypeVar("T")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays on one line, whatever the terminal width

AppArg = Annotated[str | None, typer.Argument(help="package.module:attribute, e.g. examples.shop:app")]
StoreOpt = Annotated[str | None, typer.Option(help="event store URL (default: the application's own)")]
ModulesOpt = Annotated[
    str | None, typer.Option(help="the modules this service runs, e.g. billing or users,orders (default: all)")
]
BrokerOpt = Annotated[str | None, typer.Option(help="broker to the other services: nats://host:4222")]
LetterArg = Annotated[int | None, typer.Argument(help="the dead letter's id (see `dead-letters list`)")]


def fail(message: str) -> NoReturn:
    """Print ``message`` as the command's error and exit with status 2."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # shown as written: pip's [extras] too
    raise typer.Exit(2)


def settings_of(app: str | None, **options: Any) -> Settings:
    """The settings with these options applied; the application must be named somewhere."""
    try:
        settings = load_settings(app=app, **options)
    except CitadelError as exc:
        fail(str(exc))
    if not settings.app:
        fail("no application given: pass APP (e.g. examples.shop:app) or set app in citadel.toml")
    return settings


def application_of(settings: Settings, *, existing_store: bool = False) -> Application:
    """Load the application and place it as the settings say; with ``existing_store``, give it the rest of the
    settings ``serve`` gives it, master keys included (it reads sealed payloads), and refuse a SQLite file that
    does not exist yet (a tool that reads should not create an empty database because of a typo)."""
    try:
        application = load_application(settings.app or "")
        place(application, settings)
    except CitadelError as exc:
        fail(str(exc))
    if not existing_store:
        return application
    try:
        if isinstance(application.store_spec, str):
            check_store_url(application.store_spec)
    except CitadelError as exc:
        fail(str(exc))
    path = sqlite_path(application.store_spec) if isinstance(application.store_spec, str) else None
    if path is not None and not path.exists():
        fail(f"there is no database at {path}; check --store (or CITADEL_STORE), or run the application first")
    try:  # as `serve` opens it: it reads what serve sealed, and refuses a store that needs a key it lacks
        tune(application, settings)
    except CitadelError as exc:
        fail(str(exc))
    return application


def run_with(application: Application, work: Callable[[Application], Awaitable[T]]) -> T:
    """Start ``application`` without its consumers, run ``work`` on it, stop it; return what ``work`` returns."""

    async def session() -> T:
        await application.start(consumers=False)
        try:
            return await work(application)
        finally:
            await application.stop()

    try:
        return asyncio.run(session())
    except CitadelError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise AssertionError("unreachable")
