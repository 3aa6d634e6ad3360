"""Commands that check and operate an application: boundaries, projections, dead letters, the event log."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citadel.app import Application
from citadel.boundaries import boundary_problems
from citadel.cli.common import (
    AppArg,
    BrokerOpt,
    LetterArg,
    ModulesOpt,
    StoreOpt,
    application_of,
    err,
    fail,
    out,
    run_with,
    settings_of,
)
from citadel.errors import ConfigurationError, NotFound

__all__ = [
    "check",
    "dead_letters_discard",
    "dead_letters_list",
    "dead_letters_retry",
    "events_tail",
    "projections_rebuild",
    "projections_status",
]


def check(app: AppArg = None) -> None:
    """Check module boundaries: contracts only, declared dependencies, no cycles."""
    application = application_of(settings_of(app))
    problems = boundary_problems(application.modules.values())
    if problems:
        err.print(f"[bold red]{len(problems)} boundary problem(s):[/]")
        for problem in problems:
            err.print(f"  - {problem}", highlight=False)
        raise typer.Exit(1)
    names = ", ".join(application.modules)
    out.print(f"[green]ok[/]: {len(application.modules)} modules keep their boundaries ({names})")


def projections_status(app: AppArg = None, store: StoreOpt = None) -> None:
    """Show each projection's mode, position and lag."""
    application = application_of(settings_of(app, store=store), existing_store=True)

    async def status(application: Application) -> list[Any]:
        store_ = application.store
        head = await store_.head_position()
        rows = []
        for name, binding in application.projections.items():
            position = head if binding.inline else (await store_.checkpoint(name) or 0)
            rows.append((name, binding.module, "inline" if binding.inline else "async", position, head - position))
        return rows

    table = Table("projection", "module", "mode", "position", "lag")
    for row in run_with(application, status):
        table.add_row(*(str(v) for v in row))
    out.print(table)


def projections_rebuild(
    app: AppArg = None,
    name: Annotated[str | None, typer.Argument(help="projection to rebuild (default: all)")] = None,
    store: StoreOpt = None,
) -> None:
    """Empty projections' views and replay the event log into them, with progress."""
    application = application_of(settings_of(app, store=store), existing_store=True)
    names = [name] if name else list(application.projections)
    if name and name not in application.projections:
        fail(f"no projection named {name!r}; known: {', '.join(application.projections) or 'none'}")

    async def rebuild_all(application: Application) -> None:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=out,
        ) as progress:
            for projection in names:
                task = progress.add_task(projection, total=None)

                def report(done: int, total: int, task: Any = task) -> None:
                    progress.update(task, completed=done, total=total)

                reached = await application.rebuild_projection(projection, progress=report)
                progress.update(task, completed=reached, total=max(reached, 1))

    run_with(application, rebuild_all)
    out.print(f"[green]rebuilt[/] {len(names)} projection(s)")


def _letter_id(app: str | None, letter: int | None) -> tuple[str | None, int]:
    """``retry 3`` (the application named in citadel.toml) as well as ``retry APP 3``."""
    if letter is None and app is not None and app.isdigit():
        return None, int(app)
    if letter is None:
        fail("give the dead letter's id: `citadel dead-letters list` shows them")
    return app, letter


def dead_letters_list(
    app: AppArg = None,
    consumer: Annotated[str | None, typer.Option(help="only this consumer's")] = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
) -> None:
    """Show the parked events: id, consumer, position (a stream sequence for an inbox), attempts, error."""
    application = application_of(settings_of(app, store=store, modules=modules, broker=broker), existing_store=True)
    letters = run_with(application, lambda a: a.dead_letters(consumer))
    if not letters:
        out.print("no dead letters")
        return
    table = Table("id", "consumer", "position", "event", "attempts", "parked at", "error")
    for letter in letters:
        when = dt.datetime.fromtimestamp(letter.recorded_at, dt.UTC).isoformat(timespec="seconds")
        table.add_row(
            str(letter.id),
            letter.consumer,
            str(letter.position),
            letter.event_id,
            str(letter.attempts),
            when,
            letter.error,
        )
    out.print(table)


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


def events_tail(
    app: AppArg = None,
    stream: Annotated[str | None, typer.Option(help="only this stream (a trailing * matches a prefix)")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="only this event type, e.g. orders.OrderCreated")] = None,
    last: Annotated[int, typer.Option(min=0, help="start this many events before the head")] = 20,
    follow: Annotated[bool, typer.Option(help="keep printing new events as they are committed")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    store: StoreOpt = None,
) -> None:
    """Print the event log: position, time, stream@version, type, actor and payload."""
    application = application_of(settings_of(app, store=store), existing_store=True)

    def wanted(record: Any) -> bool:
        if type_ and record.type != type_:
            return False
        if stream:
            if stream.endswith("*"):
                return bool(record.stream_id.startswith(stream[:-1]))
            return bool(record.stream_id == stream)
        return True

    def show(record: Any) -> None:
        payload = record.data.decode(errors="replace")
        when = dt.datetime.fromtimestamp(record.recorded_at, dt.UTC).isoformat(timespec="milliseconds")
        if as_json:
            line = {
                "position": record.position,
                "recorded_at": when,
                "stream_id": record.stream_id,
                "version": record.version,
                "type": record.type,
                "actor": record.actor,
                "correlation_id": record.correlation_id,
                "causation_id": record.causation_id,
                "data": json.loads(payload),
            }
            sys.stdout.write(json.dumps(line) + "\n")
        else:
            sys.stdout.write(
                f"{record.position:>8}  {when}  {record.stream_id}@{record.version}  {record.type}  "
                f"by {record.actor or '-'}  {payload}\n"
            )
        sys.stdout.flush()

    async def tail(application: Application) -> None:
        store_ = application.store
        start = max(1, await store_.head_position() - last + 1)
        if not follow:
            head = await store_.head_position()
            position = start
            while position <= head:
                records = await store_.read_all(position, 1000)
                if not records:
                    break
                for record in records:
                    if wanted(record):
                        show(record)
                position = records[-1].position + 1
            return
        async for record in store_.subscribe(start):
            if wanted(record):
                show(record)

    run_with(application, tail)
