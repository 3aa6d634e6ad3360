"""The ``citadel`` command line, run as the installed script: help, ``check``, settings, and its error messages.

Operating a store (``projections``, ``events``) is tested in ``test_cli_store.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from citadel.cli import cli

from .conftest import Citadel
from .shop_data import Shop

SHOP = "examples.shop:app"
SHOP_MODULES = "5 modules keep their boundaries (users, content, orders, billing, analytics)"


def flat(text: str) -> str:
    """``text`` with its line wrapping undone (Rich wraps at the terminal's width, 80 columns in a pipe)."""
    return " ".join(text.split())


def assert_fails_with(result: CompletedProcess[str], *fragments: str) -> None:
    """Assert a command failed with status 2 and one error naming every fragment, without a traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in flat(result.stderr)


# -- help ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "description"),
    [
        ([], "Run, check and operate Citadel applications."),
        (["serve"], "Serve the application over HTTP."),
        (["consume"], "Run the application's async projections and process managers, without HTTP, until"),
        (["check"], "Check module boundaries: contracts only, declared dependencies, no cycles."),
        (["projections"], "Inspect and rebuild projections."),
        (["projections", "status"], "Show how far each projection and process manager has got: its module, mode"),
        (["projections", "rebuild"], "Empty projections' views and replay the event log into them, with progress."),
        (["events"], "Read the event log."),
        (["events", "tail"], "Print the event log: position, time, stream@version, type, actor and payload."),
        (["dead-letters"], "Events consumers gave up on: list, retry once fixed, or discard."),
        (["dead-letters", "list"], "Show the parked events: id, consumer, position (a stream sequence for an inbox)"),
        (["dead-letters", "retry"], "Process a parked event again, once its cause is fixed"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_help_of_every_command_exits_0_and_describes_it(citadel: Citadel, command: list[str], description: str) -> None:
    result = citadel(*command, "--help")

    assert result.returncode == 0, result.stderr
    assert f"Usage: {' '.join(['citadel', *command])} [OPTIONS]" in flat(result.stdout)
    assert description in flat(result.stdout)
    assert result.stderr == ""


def test_help_of_the_program_lists_every_command(citadel: Citadel) -> None:
    listed = citadel("--help").stdout

    for command in ("serve", "consume", "check", "projections", "events"):
        assert f"│ {command} " in listed


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and group of the command line (a group has ``commands``), as the words that name it."""
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


def test_no_help_text_shows_restructuredtext_markup() -> None:
    runner = CliRunner()
    paths = list(command_paths(typer.main.get_command(cli)))

    assert ("dead-letters", "list") in paths
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "``" not in result.output, (path, result.output)
        assert ":class:" not in result.output
        assert ":func:" not in result.output


def test_help_of_events_tail_lists_its_filters(citadel: Citadel) -> None:
    listed = citadel("events", "tail", "--help").stdout

    for option in ("--stream", "--type", "--last", "--follow", "--json", "--store"):
        assert f"│ {option} " in listed


# -- check ---------------------------------------------------------------------------------------------------


def test_check_of_the_shop_exits_0_and_names_its_modules(citadel: Citadel) -> None:
    result = citadel("check", SHOP)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ok: {SHOP_MODULES}\n"
    assert result.stderr == ""


def test_check_of_an_application_whose_module_imports_anothers_internals_exits_1_and_lists_the_import(
    citadel: Citadel,
) -> None:
    result = citadel("check", "cli_leaky.app:app")

    assert result.returncode == 1
    assert result.stdout == ""
    assert flat(result.stderr) == (
        "1 boundary problem(s): - cli_leaky.orders.domain (line 3: `from cli_leaky.billing.domain import Invoice`) "
        "imports cli_leaky.billing.domain, an internal of module 'billing'; "
        "import cli_leaky.billing.contract (its public contract) instead"
    )


def test_check_accepts_a_function_that_returns_the_application(citadel: Citadel) -> None:
    result = citadel("check", "examples.shop:build_app")

    assert result.returncode == 0, result.stderr
    assert SHOP_MODULES in result.stdout


# -- errors say the fix, exit 2, and show no traceback ------------------------------------------------------


def test_an_app_without_colon_is_rejected_with_the_expected_form(citadel: Citadel) -> None:
    assert_fails_with(
        citadel("check", "examples.shop"),
        "APP must look like package.module:attribute (e.g. examples.shop:app), got 'examples.shop'",
    )


def test_an_unimportable_module_is_rejected_with_where_to_run_from(citadel: Citadel) -> None:
    assert_fails_with(
        citadel("check", "no_such_package.shop:app"),
        "cannot import 'no_such_package.shop' (No module named 'no_such_package')",
        "run from the project's directory or install the package",
    )


def test_a_missing_attribute_is_rejected_naming_module_and_attribute(citadel: Citadel) -> None:
    assert_fails_with(citadel("check", "examples.shop:shop"), "module 'examples.shop' has no attribute 'shop'")


def test_an_attribute_that_is_not_an_application_is_rejected_naming_what_it_is(citadel: Citadel) -> None:
    # users.module is a factory of the users Module: it is called, and returns a Module, not an Application.
    assert_fails_with(
        citadel("check", "examples.shop.users:module"),
        "examples.shop.users:module is a Module, not a citadel.Application",
    )


def test_an_application_that_fails_to_build_at_import_is_rejected_with_the_wiring_error(citadel: Citadel) -> None:
    assert_fails_with(
        citadel("check", "cli_leaky.miswired:app"),
        "module 'orders' depends on 'billing', which is not in the application",
    )


def test_a_factory_that_needs_arguments_is_rejected_without_a_traceback(citadel: Citadel) -> None:
    assert_fails_with(citadel("check", "cli_leaky.app:build"), "cli_leaky.app:build")


def test_no_app_and_no_citadel_toml_is_rejected_with_both_ways_to_name_it(citadel: Citadel, tmp_path: Path) -> None:
    assert_fails_with(
        citadel("check", cwd=tmp_path),
        "no application given: pass APP (e.g. examples.shop:app) or set app in citadel.toml",
    )


def test_a_port_that_is_not_a_number_is_rejected_naming_the_setting(citadel: Citadel) -> None:
    assert_fails_with(
        citadel("serve", SHOP, CITADEL_PORT="notanumber"),
        "invalid setting: Expected `int`, got `str` - at `$.port`",
        "CITADEL_* variables",
    )


@pytest.mark.parametrize("command", ["serve", "consume"])
def test_an_unknown_place_for_consumers_is_rejected_listing_the_places(citadel: Citadel, command: str) -> None:
    assert_fails_with(
        citadel(command, SHOP, CITADEL_CONSUMERS="sometimes"),
        "unknown consumers 'sometimes': choose one of workers, process, none",
    )


def test_consumers_in_a_process_of_their_own_need_citadels_server(citadel: Citadel) -> None:
    assert_fails_with(
        citadel("serve", SHOP, "--server", "granian", "--consumers", "process"),
        "consumers = process needs Citadel's server",
        "run `citadel consume` beside it",
    )


def test_a_citadel_toml_that_is_not_toml_is_rejected_naming_the_file_and_line(citadel: Citadel, tmp_path: Path) -> None:
    (tmp_path / "citadel.toml").write_text('app = "examples.shop:app\n')

    assert_fails_with(citadel("check", cwd=tmp_path), "citadel.toml is not valid TOML", "(at line 1, column 25)")


def test_an_unknown_key_in_citadel_toml_is_rejected_naming_the_key(citadel: Citadel, tmp_path: Path) -> None:
    (tmp_path / "citadel.toml").write_text('app = "examples.shop:app"\nstore_url = "sqlite:///shop.db"\n')

    assert_fails_with(
        citadel("check", cwd=tmp_path), "invalid setting: Object contains unknown field `store_url`", "citadel.toml"
    )


def test_a_store_url_of_unknown_scheme_is_rejected_with_the_form_to_use(citadel: Citadel) -> None:
    assert_fails_with(
        citadel("events", "tail", SHOP, "--store", "shop.db"),
        "unknown store URL scheme '' in 'shop.db'; use sqlite:///path/to/file.db",
    )


def test_an_error_is_printed_on_one_line_whatever_its_length(citadel: Citadel) -> None:
    result = citadel("check", "no_such_package.with_a_long_name.shop:app")

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1


# -- settings: citadel.toml and CITADEL_* --------------------------------------------------------------------


def test_citadel_toml_names_the_application_and_store_so_commands_need_neither(
    citadel: Citadel, shop: Shop, tmp_path: Path
) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "citadel.toml").write_text(f'app = "{SHOP}"\nstore = "{shop.url}"\n')

    result = citadel("projections", "status", cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert re.search(r"│ analytics\.RevenueTotals +│ analytics +│ async +│ 7 +│ 0 +│", result.stdout)


def test_citadel_app_and_citadel_store_variables_name_the_application_and_store(
    citadel: Citadel, shop: Shop, tmp_path: Path
) -> None:
    result = citadel("events", "tail", "--last", "1", cwd=tmp_path, CITADEL_APP=SHOP, CITADEL_STORE=shop.url)

    assert result.returncode == 0, result.stderr
    assert "  content.AccessGranted  by system  " in result.stdout


def test_the_store_option_overrides_citadel_store_which_overrides_citadel_toml(
    citadel: Citadel, shop: Shop, tmp_path: Path
) -> None:
    (tmp_path / "citadel.toml").write_text(f'app = "{SHOP}"\nstore = "sqlite:///from_toml.db"\n')

    from_variable = citadel("events", "tail", cwd=tmp_path, CITADEL_STORE="sqlite:///from_variable.db")
    from_option = citadel("events", "tail", "--store", shop.url, cwd=tmp_path, CITADEL_STORE="sqlite:///x.db")

    # the variable's store was the one looked for (and, missing, refused rather than created)
    assert from_variable.returncode == 2
    assert "from_variable.db" in from_variable.stderr
    assert not (tmp_path / "from_variable.db").exists()
    assert not (tmp_path / "from_toml.db").exists()
    assert from_option.stdout.count("\n") == 7
    assert not (tmp_path / "x.db").exists()


def test_app_on_the_command_line_overrides_citadel_toml(citadel: Citadel, tmp_path: Path) -> None:
    (tmp_path / "citadel.toml").write_text('app = "no_such_package:app"\n')

    result = citadel("check", SHOP, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert SHOP_MODULES in result.stdout
