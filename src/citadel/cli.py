"""The ``citadel`` command line: serve, check and operate an application.

    citadel serve examples.shop:app --port 8000 --workers 2
    citadel check examples.shop:app
    citadel projections status examples.shop:app
    citadel projections rebuild examples.shop:app analytics.revenue
    citadel events tail examples.shop:app --type orders.OrderCreated --follow
    citadel dead-letters list examples.shop:app
    citadel dead-letters retry examples.shop:app 3

``APP`` may be omitted when ``citadel.toml`` (or ``CITADEL_APP``) names it. Errors print one line that says
what to do, and exit with status 2.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citadel.app import Application
from citadel.boundaries import boundary_problems
from citadel.config import Settings, load_settings
from citadel.errors import CitadelError, ConfigurationError, NotFound
from citadel.loading import load_application
from citadel.setup import place
from citadel.store.url import sqlite_path

__all__ = ["cli", "main"]

T = TypeVar("T")

cli = typer.Typer(help="Run, check and operate Citadel applications.", no_args_is_help=True, add_completion=False)
projections_cli = typer.Typer(help="Inspect and rebuild projections.", no_args_is_help=True)
events_cli = typer.Typer(help="Read the event log.", no_args_is_help=True)
keys_cli = typer.Typer(help="Master keys of encryption at rest.", no_args_is_help=True)
letters_cli = typer.Typer(help="Events consumers gave up on: list, retry once fixed, or discard.", no_args_is_help=True)
cli.add_typer(projections_cli, name="projections")
cli.add_typer(events_cli, name="events")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(letters_cli, name="dead-letters")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays on one line, whatever the terminal width

AppArg = Annotated[str | None, typer.Argument(help="package.module:attribute, e.g. examples.shop:app")]
StoreOpt = Annotated[str | None, typer.Option(help="event store URL (default: the application's own)")]
ModulesOpt = Annotated[
    str | None, typer.Option(help="the modules this service runs, e.g. billing or users,orders (default: all)")
]
BrokerOpt = Annotated[str | None, typer.Option(help="broker to the other services: nats://host:4222")]
LetterArg = Annotated[int | None, typer.Argument(help="the dead letter's id (see `dead-letters list`)")]


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _settings(app: str | None, **options: Any) -> Settings:
    try:
        settings = load_settings(app=app, **options)
    except CitadelError as exc:
        _fail(str(exc))
    if not settings.app:
        _fail("no application given: pass APP (e.g. examples.shop:app) or set app in citadel.toml")
    return settings


def _application(settings: Settings, *, existing_store: bool = False) -> Application:
    """Load the application; with ``existing_store``, refuse a SQLite file that does not exist yet (a tool
    that reads should not create an empty database because of a typo)."""
    try:
        application = load_application(settings.app or "")
        place(application, settings)
    except CitadelError as exc:
        _fail(str(exc))
    path = sqlite_path(application.store_spec) if isinstance(application.store_spec, str) else None
    if existing_store and path is not None and not path.exists():
        _fail(f"there is no database at {path}; check --store (or CITADEL_STORE), or run the application first")
    return application


def _run(application: Application, work: Callable[[Application], Awaitable[T]]) -> T:
    async def session() -> T:
        await application.start(consumers=False)
        try:
            return await work(application)
        finally:
            await application.stop()

    try:
        return asyncio.run(session())
    except CitadelError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise AssertionError("unreachable")


@cli.command()
def serve(
    app: AppArg = None,
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on (default 8000)")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (default 1)")] = None,
    server: Annotated[
        str | None, typer.Option(help="HTTP server: citadel (built in, HTTP/1.1, the default) or granian")
    ] = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
    tls_cert: Annotated[
        str | None, typer.Option(help="PEM certificate chain: serve HTTPS, TLS 1.3 only (needs --tls-key)")
    ] = None,
    tls_key: Annotated[str | None, typer.Option(help="the certificate's unencrypted PEM private key")] = None,
    consumers: Annotated[
        str | None,
        typer.Option(
            help="where async projections and process managers run: workers (the default), process (one of "
            "their own, forked by the server) or none (left to `citadel consume`)"
        ),
    ] = None,
) -> None:
    """Serve the application over HTTP.

    With --tls-cert and --tls-key (or tls_cert and tls_key in citadel.toml): over HTTPS, TLS 1.3 only.
    """
    from citadel.server import serve as run_server

    settings = _settings(
        app,
        host=host,
        port=port,
        workers=workers,
        server=server,
        store=store,
        tls_cert=tls_cert,
        tls_key=tls_key,
        modules=modules,
        broker=broker,
        consumers=consumers,
    )
    try:
        run_server(settings)
    except CitadelError as exc:
        _fail(str(exc))


@cli.command()
def consume(
    app: AppArg = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
) -> None:
    """Run the application's async projections and process managers, without HTTP, until interrupted.

    The process that servers started with --consumers none leave them to; several may run (on one node or
    many): each consumer runs in one of them at a time, and another takes over when it stops.
    """
    from citadel.server import consume as run_consumers

    settings = _settings(app, store=store, modules=modules, broker=broker)
    try:
        run_consumers(settings)
    except CitadelError as exc:
        _fail(str(exc))


@cli.command()
def check(app: AppArg = None) -> None:
    """Check module boundaries: contracts only, declared dependencies, no cycles."""
    application = _application(_settings(app))
    problems = boundary_problems(application.modules.values())
    if problems:
        err.print(f"[bold red]{len(problems)} boundary problem(s):[/]")
        for problem in problems:
            err.print(f"  - {problem}", highlight=False)
        raise typer.Exit(1)
    names = ", ".join(application.modules)
    out.print(f"[green]ok[/]: {len(application.modules)} modules keep their boundaries ({names})")


@projections_cli.command("status")
def projections_status(app: AppArg = None, store: StoreOpt = None) -> None:
    """Show each projection's mode, position and lag."""
    application = _application(_settings(app, store=store), existing_store=True)

    async def status(application: Application) -> list[Any]:
        store_ = application.store
        head = await store_.head_position()
        rows = []
        for name, binding in application.projections.items():
            position = head if binding.inline else (await store_.checkpoint(name) or 0)
            rows.append((name, binding.module, "inline" if binding.inline else "async", position, head - position))
        return rows

    table = Table("projection", "module", "mode", "position", "lag")
    for row in _run(application, status):
        table.add_row(*(str(v) for v in row))
    out.print(table)


@projections_cli.command("rebuild")
def projections_rebuild(
    app: AppArg = None,
    name: Annotated[str | None, typer.Argument(help="projection to rebuild (default: all)")] = None,
    store: StoreOpt = None,
) -> None:
    """Empty projections' views and replay the event log into them, with progress."""
    application = _application(_settings(app, store=store), existing_store=True)
    names = [name] if name else list(application.projections)
    if name and name not in application.projections:
        _fail(f"no projection named {name!r}; known: {', '.join(application.projections) or 'none'}")

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

    _run(application, rebuild_all)
    out.print(f"[green]rebuilt[/] {len(names)} projection(s)")


def _letter_id(app: str | None, letter: int | None) -> tuple[str | None, int]:
    """``retry 3`` (the application named in citadel.toml) as well as ``retry APP 3``."""
    if letter is None and app is not None and app.isdigit():
        return None, int(app)
    if letter is None:
        _fail("give the dead letter's id: `citadel dead-letters list` shows them")
    return app, letter


@letters_cli.command("list")
def dead_letters_list(
    app: AppArg = None,
    consumer: Annotated[str | None, typer.Option(help="only this consumer's")] = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
) -> None:
    """Show the parked events: id, consumer, position (a stream sequence for an inbox), attempts, error."""
    application = _application(_settings(app, store=store, modules=modules, broker=broker), existing_store=True)
    letters = _run(application, lambda a: a.dead_letters(consumer))
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


@letters_cli.command("retry")
def dead_letters_retry(
    app: AppArg = None,
    letter: LetterArg = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
) -> None:
    """Process a parked event again, once its cause is fixed; it leaves the list when that succeeds."""
    app, letter = _letter_id(app, letter)
    application = _application(_settings(app, store=store, modules=modules, broker=broker), existing_store=True)

    async def retry(application: Application) -> None:
        try:
            await application.retry_dead_letter(letter)
        except (NotFound, ConfigurationError):
            raise
        except Exception as exc:
            _fail(f"dead letter {letter} failed again and stays parked: {type(exc).__name__}: {exc}")

    _run(application, retry)
    out.print(f"[green]retried[/] dead letter {letter}: processed and removed")


@letters_cli.command("discard")
def dead_letters_discard(
    app: AppArg = None,
    letter: LetterArg = None,
    store: StoreOpt = None,
    modules: ModulesOpt = None,
    broker: BrokerOpt = None,
) -> None:
    """Give up a parked event for good: remove it without processing it."""
    app, letter = _letter_id(app, letter)
    application = _application(_settings(app, store=store, modules=modules, broker=broker), existing_store=True)
    removed = _run(application, lambda a: a.discard_dead_letter(letter))
    out.print(f"[yellow]discarded[/] dead letter {letter} ({removed.consumer}, event {removed.event_id})")


@events_cli.command("tail")
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
    application = _application(_settings(app, store=store), existing_store=True)

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

    _run(application, tail)


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= 366 * 86400):
        _fail(f"--ttl {text!r} is not a duration like 90, 30m, 1h or 7d (more than 0, at most a year)")
    return seconds
    raise AssertionError("unreachable")


@cli.command()
def token(
    app: AppArg = None,
    subject: Annotated[str, typer.Option(help="the subject (user id) the token speaks for")] = "",
    role: Annotated[list[str] | None, typer.Option(help="a role of the subject; repeat for several")] = None,
    ttl: Annotated[str, typer.Option(help="how long the token is valid: 90, 30m, 1h, 7d")] = "1h",
) -> None:
    """Print a signed development token (HS256, with the server's secret) for ``Authorization: Bearer``."""
    from citadel.security.identity import issue_token, load_or_create_secret
    from citadel.setup import token_secret

    if not subject:
        _fail("give the token a subject: --subject USER_ID")
    settings = _settings(app) if app else _any_settings()
    try:
        uses_file = not (settings.auth_secret or settings.auth_public_key_file or settings.auth_jwks_file)
        if uses_file and settings.auth_secret_file:  # the server would create it on its first start
            load_or_create_secret(Path(settings.auth_secret_file))
        secret = token_secret(settings)
    except CitadelError as exc:
        _fail(str(exc))
    if secret is None:
        _fail("tokens come from your identity provider (auth_public_key_file or auth_jwks_file is set)")
    print(
        issue_token(
            secret,
            subject,
            role or [],
            ttl=_duration(ttl),
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
    )


def _any_settings() -> Settings:
    try:
        return load_settings()
    except CitadelError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


@keys_cli.command("generate")
def keys_generate(
    path: Annotated[str, typer.Argument(help="where to write the key file")] = "var/citadel-master-keys.json",
) -> None:
    """Write a new master key file (refuses to overwrite one: its keys unwrap your data keys)."""
    from citadel.security.encryption import MasterKeys

    target = Path(path)
    if target.exists():
        _fail(f"{target} exists; its keys are needed to read your data. Rotate with `citadel keys rotate` instead")
    MasterKeys.generate().save(target)
    out.print(f"wrote a new master key to {target}; keep it secret, and out of the database's backups")


@keys_cli.command("rotate")
def keys_rotate(app: AppArg = None, store: StoreOpt = None) -> None:
    """Add a new current master key to the key file and re-wrap every data key with it (no event is rewritten)."""
    from citadel.security.encryption import MasterKeys

    settings = _settings(app, store=store)
    if not settings.master_key_file:
        _fail("rotation needs a key file (master_key_file); a key given in CITADEL_MASTER_KEY is rotated by you")
    path = Path(settings.master_key_file)
    try:
        rotated = MasterKeys.load(path).rotated()
    except CitadelError as exc:
        _fail(str(exc))
    application = _application(settings, existing_store=True)

    async def rewrap(application: Application) -> int:
        return await application.store.rewrap_keys(rotated)

    rotated.save(path)  # first: the file keeps the old keys too, so whatever happens next, nothing is lost
    changed = _run(application, rewrap)
    out.print(f"rotated the master key to {rotated.current}; re-wrapped {changed} data key(s)")


def main() -> None:
    """Entry point of the ``citadel`` script."""
    cli()
