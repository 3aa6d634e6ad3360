"""Running every block of one page, each by its language (see ``tests.docs.blocks``)."""

from __future__ import annotations

import contextlib
import json
import sys
import tomllib
import traceback
from pathlib import Path
from typing import Any

import examples  # noqa: F401 - the repository's package, imported before a page's folder (linking to it) is on the path
from citadel.config import load_settings
from citadel.errors import ConfigurationError
from tests.docs.blocks import PYTHON, ROOT, RUN_ELSEWHERE, SHELL, TEXT, Block, blocks_of
from tests.docs.session import prepare, run_shell

__all__ = ["run_page"]

KNOWN = PYTHON | SHELL | TEXT | {"toml", "json", "conf"}
EXAMPLES = "examples/"


def run_page(page: Path, folder: Path) -> None:
    """Run every block of ``page`` that is not marked ``not run``, with ``folder`` as the working directory.

    Raises:
        AssertionError: a block failed; the message names the page, the block's line and language.
    """
    blocks = [b for b in blocks_of(page) if b.not_run is None]
    for block in blocks:
        if block.lang not in KNOWN:
            raise AssertionError(
                f"{block.where}: give the block a language this test knows ({', '.join(sorted(KNOWN))}); "
                f"`text` for diagrams and output\n{block.excerpt()}"
            )
    prepare(folder)
    for block in blocks:
        if block.file is not None:
            _file(block, folder)
    for block in blocks:
        if block.lang == "toml":
            _toml(block, folder)
        elif block.lang == "json":
            _json(block)
        elif block.lang == "conf":
            _conf(block)
    _python([b for b in blocks if b.lang in PYTHON and not _is_test_file(b)], folder)
    run_shell([b for b in blocks if b.lang in SHELL], folder)


def _is_test_file(block: Block) -> bool:
    name = Path(block.file or "").name
    return name == "conftest.py" or name.startswith("test_")


def _file(block: Block, folder: Path) -> None:
    """A block that is a file: identical to the repository's under ``examples/``, or written into ``folder``."""
    assert block.file is not None
    original = ROOT / block.file
    if block.file.startswith(EXAMPLES):
        if not original.exists():
            raise AssertionError(f"{block.where}: {block.file} is not in the repository")
        if original.read_text() != block.text:
            raise AssertionError(f"{block.where}: the block differs from {block.file}; copy the file into the page")
        return
    target = folder / block.file
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    target.write_text(block.text)


def _toml(block: Block, folder: Path) -> None:
    try:
        values = tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(f"{block.where}: not valid TOML: {exc}\n{block.excerpt()}") from None
    if block.file is not None and Path(block.file).name != "citadel.toml":
        return  # another tool's file (pyproject.toml): parsing is all this test can do
    settings = folder / ".session-citadel.toml"
    settings.write_text(block.text)
    try:
        load_settings(settings, environ={})
    except ConfigurationError as exc:
        raise AssertionError(f"{block.where}: citadel's settings refuse it: {exc}\n{block.excerpt()}") from None
    finally:
        settings.unlink()
    assert values is not None


def _json(block: Block) -> None:
    try:
        json.loads(block.text)
    except ValueError as exc:
        raise AssertionError(f"{block.where}: not valid JSON: {exc}\n{block.excerpt()}") from None


def _conf(block: Block) -> None:
    if block.marker is None or RUN_ELSEWHERE not in block.marker:
        raise AssertionError(
            f"{block.where}: a conf block is run by a test that reads it; mark it `<!-- {RUN_ELSEWHERE} -->` "
            "and read it there, or mark it `<!-- not run: why -->`"
        )
    readers = [p for p in (ROOT / "tests").rglob("*.py") if RUN_ELSEWHERE in p.read_text()]
    if not [p for p in readers if p.parent.name != "docs"]:
        raise AssertionError(f"{block.where}: no test reads the blocks marked {RUN_ELSEWHERE!r}")


def _python(blocks: list[Block], folder: Path) -> None:
    """Run the page's python blocks in order, in one namespace, from ``folder`` (which is importable)."""
    namespace: dict[str, Any] = {"__name__": "docs_page"}
    modules = set(sys.modules)
    sys.path.insert(0, str(folder))
    try:
        with contextlib.chdir(folder):
            for block in blocks:
                try:
                    exec(compile(block.text, block.where, "exec"), namespace)  # the docs' own code
                except BaseException as exc:
                    trace = "".join(traceback.format_exception(exc)[-6:])
                    raise AssertionError(f"{block.where}: the block raised\n{block.excerpt()}\n{trace}") from None
    finally:
        sys.path.remove(str(folder))
        for name in set(sys.modules) - modules:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin.startswith(str(folder)):
                del sys.modules[name]
