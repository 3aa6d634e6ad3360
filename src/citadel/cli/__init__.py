"""The ``citadel`` command line: serve, check and operate an application.

    citadel serve examples.shop:app --port 8000 --workers 2
    citadel check examples.shop:app
    citadel projections status examples.shop:app
    citadel projections rebuild examples.shop:app analytics.revenue
    citadel events tail examples.shop:app --type orders.OrderCreated --follow
    citadel dead-letters list examples.shop:app
    citadel dead-letters retry examples.shop:app 3
    citadel docs examples.shop:app --out docs/modules

``APP`` may be omitted when ``citadel.toml`` (or ``CITADEL_APP``) names it. Errors print one line that says
what to do, and exit with status 2.
"""

from __future__ import annotations

import typer

from citadel.cli.documenting import docs
from citadel.cli.letters import dead_letters_discard, dead_letters_list, dead_letters_retry
from citadel.cli.operating import check, events_tail, projections_rebuild, projections_status
from citadel.cli.secrets import keys_generate, keys_rotate, token
from citadel.cli.serving import consume, serve

__all__ = ["cli", "main"]

cli = typer.Typer(help="Run, check and operate Citadel applications.", no_args_is_help=True, add_completion=False)
projections_cli = typer.Typer(help="Inspect and rebuild projections.", no_args_is_help=True)
events_cli = typer.Typer(help="Read the event log.", no_args_is_help=True)
keys_cli = typer.Typer(help="Master keys of encryption at rest.", no_args_is_help=True)
letters_cli = typer.Typer(help="Events consumers gave up on: list, retry once fixed, or discard.", no_args_is_help=True)
cli.add_typer(projections_cli, name="projections")
cli.add_typer(events_cli, name="events")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(letters_cli, name="dead-letters")

for command in (serve, consume, check, docs, token):
    cli.command()(command)
projections_cli.command("status")(projections_status)
projections_cli.command("rebuild")(projections_rebuild)
letters_cli.command("list")(dead_letters_list)
letters_cli.command("retry")(dead_letters_retry)
letters_cli.command("discard")(dead_letters_discard)
events_cli.command("tail")(events_tail)
keys_cli.command("generate")(keys_generate)
keys_cli.command("rotate")(keys_rotate)


def main() -> None:
    """Entry point of the ``citadel`` script."""
    cli()
