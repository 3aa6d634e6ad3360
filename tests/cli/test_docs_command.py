"""``citadel docs``, run as the installed script: the shop's committed pages are what it writes, the SVG map is
written or skipped by whether a renderer is on the PATH, and bad input is one line of error with status 2."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.cli.test_cli import assert_fails_with, flat

from .conftest import REPO, Citadel

SHOP = "examples.shop:app"
COMMITTED = REPO / "docs" / "modules"
REGENERATE = "citadel docs examples.shop:app --out docs/modules"


def test_the_committed_shop_pages_are_what_the_command_writes(citadel: Citadel, tmp_path: Path) -> None:
    result = citadel("docs", SHOP, "--out", str(tmp_path / "modules"))
    assert result.returncode == 0, result.stderr
    written = {p.name: p.read_text() for p in (tmp_path / "modules").iterdir()}
    committed = {p.name: p.read_text() for p in COMMITTED.iterdir()}
    assert sorted(written) == sorted(committed), f"docs/modules/ holds other pages; run `{REGENERATE}`"
    stale = [name for name in sorted(written) if written[name] != committed[name]]
    assert stale == [], f"docs/modules/{stale[0] if stale else ''} is out of date; run `{REGENERATE}`"


def test_it_names_what_it_wrote_and_why_there_is_no_svg(citadel: Citadel, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = citadel("docs", SHOP, "--out", str(tmp_path / "out"), PATH=str(empty))
    assert result.returncode == 0, result.stderr
    said = flat(result.stdout)
    assert "wrote 6 pages into" in said
    assert "analytics.md, billing.md, content.md, modules.md, orders.md, users.md" in said
    assert "modules.svg skipped: mmdc (the Mermaid CLI) is not on PATH" in said
    assert not (tmp_path / "out" / "modules.svg").exists()


def test_with_the_mermaid_cli_on_the_path_it_writes_the_svg(citadel: Citadel, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    renderer = bin_dir / "mmdc"
    renderer.write_text("#!/bin/sh\nprintf '<svg/>' > \"$4\"\n")  # --input FILE --output FILE
    renderer.chmod(renderer.stat().st_mode | stat.S_IXUSR)
    result = citadel("docs", SHOP, "--out", str(tmp_path / "out"), PATH=str(bin_dir))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "modules.svg").read_text() == "<svg/>"
    assert "skipped" not in result.stdout


def test_an_app_that_cannot_be_imported_is_one_line_of_error(citadel: Citadel, tmp_path: Path) -> None:
    result = citadel("docs", "no_such_package.shop:app", "--out", str(tmp_path / "out"))
    assert_fails_with(result, "cannot import 'no_such_package.shop'")
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_refused(citadel: Citadel, tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert_fails_with(citadel("docs", SHOP, "--out", str(target)), "is a file; pass a folder")
    assert target.read_text() == "keep me"


def test_an_out_below_a_file_is_refused(citadel: Citadel, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    result = citadel("docs", SHOP, "--out", str(tmp_path / "notes.txt" / "modules"))
    assert_fails_with(result, "cannot write into", "pass --out a folder you may write to")


def test_a_page_that_cannot_be_written_is_refused(citadel: Citadel, tmp_path: Path) -> None:
    (tmp_path / "out" / "modules.md").mkdir(parents=True)  # where the map goes, a folder is in the way
    result = citadel("docs", SHOP, "--out", str(tmp_path / "out"))
    assert_fails_with(result, "cannot write into", "pass --out a folder you may write to")


def test_out_is_required(citadel: Citadel) -> None:
    result = citadel("docs", SHOP)
    assert result.returncode == 2
    assert "--out" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_says_what_it_writes(citadel: Citadel) -> None:
    result = citadel("docs", "--help")
    assert result.returncode == 0
    assert "Write the module map (modules.md, Mermaid) and a canvas per module" in flat(result.stdout)
