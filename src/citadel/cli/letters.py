"""Commands on dead letters, the events consumers gave up on: list them, retry one once its cause is fixed, or
discard it."""

from __future__ import annotations

import datetime as dt
import json
import sys
import textwrap
from typing import Annotated

import typer
from rich.text import Text

from citadel.app import Application
from citadel.cli.common import (
    AppArg,
    BrokerOpt,
    LetterArg,
    ModulesOpt,
    StoreOpt,
    application_of,
    fail,
    out,
    run_with,
    settings_of,
)
from citadel.errors import ConfigurationError, NotFound
from citadel.store.base import DeadLetter

__all__ = ["dead_letters_discard", "dead_letters_list", "dead_letters_retry"]


def _letter_id(app: str | None, letter: int | None) -> tuple[str | None, int]:
    """Read ``retry 3`` (the application named in citadel.toml) as well as ``retry APP 3``."""
    if letter is None and app is not None and app.isdigit():
        return None, int(app)
    if letter is None:
        fail("give the dead letter's id: `citadel dead-letters list` shows them")
    return app, letter


def _parked_at(letter: DeadLetter) -> str:
    return dt.datetime.fromtimestamp(letter.recorded_at, dt.UTC).isoformat(timespec="seconds")


def dead_letters_list(
    app: AppArg = None,
    consumer: Annotated[str | None, typer.Option(help="only this consumer's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line, for scripts")] = False,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
) -> None:
    """Show the parked events: id, consumer, position (a stream sequence for an inbox), event id, attempts, when
    parked, and the error, whole (long lines wrap)."""
    application = application_of(settings_of(app, store=store, modules=modules, broker=broker), existing_store=True)
    letters = run_with(application, lambda a: a.dead_letters(consumer))
    if as_json:
        for letter in letters:
            line = {
                "id": letter.id,
                "consumer": letter.consumer,
                "position": letter.position,
                "event_id": letter.event_id,
                "attempts": letter.attempts,
                "parked_at": _parked_at(letter),
                "error": letter.error,
            }
            sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        return
    if not letters:
        out.print("no dead letters")
        return
    for index, letter in enumerate(letters):  # a block each, not table columns: nothing is cut off, it wraps
        if index:
            out.print()
        parked = dt.datetime.fromtimestamp(letter.recorded_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        out.print(
            Text.assemble(
                (f"dead letter {letter.id}", "bold"),
                f"  {letter.consumer}  position {letter.position}  {letter.attempts} attempts",
            )
        )
        details = [f"event {letter.event_id}  parked {parked}", *letter.error.splitlines()]
        for text in details:
            for part in textwrap.wrap(text, max(20, out.width - 2), break_on_hyphens=False) or [""]:
                out.print(f"  {part}", markup=False, highlight=False, soft_wrap=True)  # as written: no markup


def dead_letters_retry(
    app: AppArg = None,
    letter: LetterArg = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
) -> None:
    """Process a parked event again, once its cause is fixed; it leaves the list when that succeeds."""
    app, letter = _letter_id(app, letter)
    application = application_of(settings_of(app, store=store, modules=modules, broker=broker), existing_store=True)

    async def retry(application: Application) -> None:
        try:
            await application.retry_dead_letter(letter)
        except (NotFound, ConfigurationError):
            raise
        except Exception as exc:
            fail(f"dead letter {letter} failed again and stays parked: {type(exc).__name__}: {exc}")

    run_with(application, retry)
    out.print(f"[green]retried[/] dead letter {letter}: processed and removed")


def dead_letters_discard(
    app: AppArg = None,
    letter: LetterArg = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
) -> None:
    """Give up a parked event for good: remove it without processing it."""
    app, letter = _letter_id(app, letter)
    application = application_of(settings_of(app, store=store, modules=modules, broker=broker), existing_store=True)
    removed = run_with(application, lambda a: a.discard_dead_letter(letter))
    out.print(f"[yellow]discarded[/] dead letter {letter} ({removed.consumer}, event {removed.event_id})")
