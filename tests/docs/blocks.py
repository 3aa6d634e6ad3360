"""The fenced code blocks of the README and the docs pages, and the conventions that say how each one runs.

The language after the opening fence decides:

* ``python``: run, the page's blocks in order in one namespace (a block may use what an earlier one defined);
* ``toml``: loaded by ``citadel.config.load_settings`` as a ``citadel.toml`` (every key must exist);
* ``json``: parsed;
* ``sh``, ``shell``, ``bash``, ``console``: run by bash, the page's blocks in order in one session (see
  ``tests.docs.session``);
* ``text``: diagrams and output, not code: never run;
* ``conf``: a NATS server config, run by the test that names it in the marker before the block
  (``<!-- nats-server config: tested -->``, read by ``tests/broker/secured.py``).

A block whose first line is a comment naming a file (``# examples/quickstart/bank.py``, ``# pyproject.toml``) is
that file: under ``examples/``, the block must be identical to the repository's file; any other path is written
into the page's folder before its blocks run (its tests run where the page runs ``pytest``).

A block that cannot run here says so, visibly, on the line before its fence: ``<!-- not run: the reason -->``.
``tests/test_docs.py`` lists every such block; keep them few.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PAGES", "ROOT", "Block", "blocks_of", "pages", "shown"]

ROOT = Path(__file__).resolve().parents[2]

PYTHON = frozenset({"python", "py"})
SHELL = frozenset({"sh", "shell", "bash", "console"})
TEXT = frozenset({"text", "mermaid"})
RUN_ELSEWHERE = "nats-server config: tested"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)(?P<lang>[^`\s]*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.+?)\s*-->\s*$")
_MARKER = re.compile(r"^<!--\s*(?P<text>.+?)\s*-->\s*$")
_FILE = re.compile(r"^(#|//) (?P<path>[\w.-]+(/[\w.-]+)*\.(py|toml|json|cfg|ini|txt))$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, and what the line before it says."""

    page: Path
    line: int  # of the opening fence, from 1
    lang: str
    text: str
    marker: str | None  # the HTML comment on the line before the fence, if any

    @property
    def where(self) -> str:
        """``docs/modules.md:12 (python)``: the page, the fence's line and the language, for failure messages."""
        return f"{shown(self.page)}:{self.line} ({self.lang or 'no language'})"

    @property
    def not_run(self) -> str | None:
        """The reason given by a ``<!-- not run: ... -->`` marker, or None."""
        found = _NOT_RUN.match(self.marker or "")
        return found["reason"] if found else None

    @property
    def file(self) -> str | None:
        """The path the block's first line names, when it is a file."""
        first = self.text.split("\n", 1)[0]
        found = _FILE.match(first)
        return found["path"] if found else None

    def excerpt(self) -> str:
        """The block's first lines, to recognise it by in a failure message."""
        lines = self.text.splitlines()
        shown = "\n".join(f"    | {line}" for line in lines[:4])
        return shown + ("\n    | ..." if len(lines) > 4 else "")


def shown(page: Path) -> str:
    """A page's path as the failure messages show it: from the repository's root when it is in it."""
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def pages() -> list[Path]:
    """The README and every page under ``docs/`` (its subfolders too), new ones included."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


PAGES = pages()


def blocks_of(page: Path) -> list[Block]:
    """Return the fenced blocks of ``page`` in order.

    Raises:
        AssertionError: a fence is never closed (the message names the line).
    """
    lines = page.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence[0] * len(fence)):
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        if end == len(lines):
            raise AssertionError(f"{shown(page)}:{index + 1}: the code block is never closed")
        before = lines[index - 1].strip() if index > 0 else ""
        marker = before if _MARKER.match(before) else None
        found.append(Block(page, index + 1, opening["lang"].lower(), "\n".join(body) + "\n", marker))
        index = end + 1
    return found
