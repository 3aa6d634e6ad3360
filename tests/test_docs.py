"""Every code block of the README and of the docs pages runs, each by its language (``tests/docs/blocks.py``
says how); a page added to ``docs/`` or a folder in it is picked up on its own. The site (``mkdocs.yml``) lists
every page; ``make lint`` builds it with ``mkdocs build --strict``, which fails on a broken link."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import citadel.errors
from tests.docs import session
from tests.docs.blocks import PAGES, ROOT, Block, blocks_of, shown
from tests.docs.runner import run_page
from tests.docs.session import NEVER_RUN, commands_of

NOT_RUN = {
    "docs/extracting-modules.md": 2,
    "docs/operating.md": 1,
    "docs/postgresql.md": 1,
}
"""How many blocks each page marks ``<!-- not run: ... -->``. Keep it short: a block that cannot run here is one
the docs cannot promise works."""


@pytest.mark.parametrize("page", PAGES, ids=shown)
def test_every_code_block_of_the_page_runs(page: Path, tmp_path: Path) -> None:
    run_page(page, tmp_path)


def test_only_the_listed_blocks_are_marked_not_run() -> None:
    marked: list[Block] = [b for page in PAGES for b in blocks_of(page) if b.not_run is not None]
    counted: dict[str, int] = {}
    for block in marked:
        counted[shown(block.page)] = counted.get(shown(block.page), 0) + 1
    listing = "\n".join(f"  {b.where}: {b.not_run}" for b in marked)
    assert counted == NOT_RUN, f"the blocks marked not run:\n{listing}"


def test_the_commands_passed_over_are_only_make_test() -> None:
    passed = [
        c
        for page in PAGES
        for b in blocks_of(page)
        for c in commands_of(b)
        if c.text.split("#")[0].strip() in NEVER_RUN
    ]
    assert [c.where for c in passed] == ["README.md:9"]


def test_a_failing_python_block_is_reported_with_its_page_and_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n```python\nx = 1\n```\n\nText.\n\n```python\nassert x == 2, 'x is 1'\n```\n")
    with pytest.raises(AssertionError, match=r"page\.md:9 \(python\): the block raised(.|\n)*x is 1"):
        run_page(page, tmp_path / "work")


def test_a_failing_shell_command_is_reported_with_its_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```sh\ntrue\nA=1   # a comment\ntest $A = 2\n```\n")
    with pytest.raises(AssertionError, match=r"page\.md:4: the command failed(.|\n)*test \$A = 2"):
        run_page(page, tmp_path / "work")


def test_a_json_comment_is_what_the_command_must_print(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "READ_TRIES", 2)
    page = tmp_path / "page.md"
    page.write_text('```sh\necho \'{"a": 1}\'   # {"a": 2}\n```\n')
    with pytest.raises(AssertionError, match=r"expected \{\"a\": 2\}(.|\n)*but got  \{\"a\": 1\}"):
        run_page(page, tmp_path / "work")


def test_a_toml_block_with_an_unknown_setting_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```toml\nprot = 8000\n```\n")
    with pytest.raises(AssertionError, match=r"page\.md:1 \(toml\): citadel's settings refuse it(.|\n)*prot"):
        run_page(page, tmp_path / "work")


def test_a_block_without_a_language_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```\nsomething\n```\n")
    with pytest.raises(AssertionError, match=r"page\.md:1 \(no language\): give the block a language"):
        run_page(page, tmp_path / "work")


def test_the_errors_page_names_every_error_class() -> None:
    page = (ROOT / "docs" / "errors.md").read_text()
    missing = [name for name in citadel.errors.__all__ if f"`{name}`" not in page]
    assert missing == [], f"docs/errors.md does not explain {missing}"


def test_a_json_comment_that_matches_passes(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('```sh\necho \'{"a": [1, 2]}\'   # {"a": [1, 2]}   then a remark\n```\n')
    run_page(page, tmp_path / "work")


def test_json_in_the_comment_lines_below_a_command_is_what_it_must_print(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('```sh\necho \'{"a": 1, "b": 2}\' -d\n# {"a": 1,\n#  "b": 3}\n```\n')
    with pytest.raises(AssertionError, match=r'page\.md:2: the command failed(.|\n)*expected \{"a": 1, "b": 3\}'):
        run_page(page, tmp_path / "work")


def nav_pages(entries: list[object]) -> list[str]:
    """The pages of a ``nav`` of ``mkdocs.yml``, in order, sections flattened."""
    pages: list[str] = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [str(value)]
    return pages


def test_the_site_navigation_lists_every_docs_page_once() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = nav_pages(config["nav"])
    present = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(listed) == present
    assert len(listed) == len(set(listed)), "a page is in the navigation twice"


def test_the_site_starts_with_getting_started() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["nav"][0] == {"Getting started": "index.md"}
    assert (ROOT / "docs" / "index.md").read_text().startswith("# Getting started\n")
