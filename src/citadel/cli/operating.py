"""Commands that check and operate an application: boundaries, projections and process managers, the event log
(dead letters: ``letters``)."""

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
from citadel.cli.common import AppArg, StoreOpt, application_of, err, fail, out, run_with, settings_of
from citadel.projection_admin import ProjectionStatus, stored_statuses
from citadel.store.records import FORGOTTEN, payload_text

__all__ = ["FORGOTTEN", "check", "events_tail", "projections_rebuild", "projections_status"]

"""What ``events tail`` prints for the payload of an event whose subject was forgotten (its key is deleted)."""


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


def projections_status(
    app: AppArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line, for scripts")] = False,
    store: StoreOpt = None,
) -> None:
    """Show how far each projection and process manager has got: its module, mode (inline, async or process
    manager), position and lag behind the head of the log, by its stored checkpoint."""
    application = application_of(settings_of(app, store=store), existing_store=True)

    async def status(application: Application) -> list[ProjectionStatus]:
        return await stored_statuses(application.projections, application.modules.values(), application.store)

    statuses = run_with(application, status)
    if as_json:
        for row in statuses:
            line = {"name": row.name, "module": row.module, "mode": row.mode, "position": row.position, "lag": row.lag}
            sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        return
    table = Table("consumer", "module", "mode", "position", "lag")
    for row in statuses:
        table.add_row(row.name, row.module, row.mode, str(row.position), str(row.lag))
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


def events_tail(
    app: AppArg = None,
    stream: Annotated[str | None, typer.Option(help="only this stream (a trailing * matches a prefix)")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="only this event type, e.g. orders.OrderCreated")] = None,
    last: Annotated[int, typer.Option(min=0, help="print the last N events of the log (then filtered)")] = 20,
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
        payload = payload_text(record)
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
                "data": None if record.forgotten else json.loads(payload),
                "forgotten": record.forgotten,
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
        head = await store_.head_position()
        records = await store_.read_last(last)  # by count: positions are not dense on PostgreSQL
        for record in records:
            if wanted(record):
                show(record)
        if follow:
            async for record in store_.subscribe(records[-1].position + 1 if records else head + 1):
                if wanted(record):
                    show(record)

    run_with(application, tail)
