"""No measurements in the comments and docstrings of ``src/`` and ``examples/``: the numbers live in the benchmark
docs.

A *figure* is a number followed by a unit: of time (``ns``, ``µs``, ``us``, ``ms``, ``s``, ``sec``, ``seconds``,
``minutes``), of size (``bytes``, ``KB``, ``KiB``, ``MB``, ``MiB``, ``GB``, ``GiB``), of rate (``/s``,
``events/s``, ``per second``) or a ratio (``%``, the multiplication sign, ``3x``). A comment or docstring may
state a figure only when it is the code's own value: the same number appears in that file's code, as a number
or inside a string (SQL), possibly converted between seconds, milliseconds and microseconds or between binary
multiples. So a docstring may say "waits at most 0.25 s" next to ``timeout: float = 0.25``; it may not say "a
check takes 3 µs" or "2x faster", which is what the code did once on one machine. Say what the code
does and why, and name the benchmark that shows the effect (``bench/store.py``, its command-path row); the
figures are in ``docs/benchmarks.md``.

Not figures: a hyphenated kind ("a 32-bit length", "the 10,000-user load"), a plural ("the 429s"), a version
("HTTP/1.x"), a section of a standard ("RFC 9112 section 3.2").
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator

import pytest

from tests.docs.blocks import ROOT

SOURCES = (ROOT / "src" / "citadel", ROOT / "examples")

_NUMBER = r"(?P<number>\d+(?:[.,]\d+)*)"
_UNIT = (
    r"(?:\s?(?P<close>%|\u00d7|x(?![\w-])|ms|µs|us|ns|sec|seconds?|minutes?|bytes?|[KMG]i?B|(?:[a-z]+)?/s)"
    r"|\s(?P<spaced>s|per second))(?![\w/-])"
)
_DECIMAL_SECONDS = r"|(?P<decimal>\d+\.\d+)s(?![\w/-])"
FIGURE = re.compile(rf"(?<![\w.,/-]){_NUMBER}{_UNIT}{_DECIMAL_SECONDS}")
_ANY_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SCALES = (1, 1000, 1024, 1024**2, 1024**3)


def prose_of(source: str) -> Iterator[tuple[int, str]]:
    """Each line of the comments and of the docstrings (string statements, attribute docstrings included)."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for offset, line in enumerate(node.value.value.splitlines()):
                yield node.lineno + offset, line


def values_in_code(source: str) -> set[float]:
    """The numbers the code itself holds: numeric literals, and numbers inside string literals."""
    tree = ast.parse(source)
    docstrings = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    values: set[float] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in docstrings:
            continue
        if isinstance(node.value, int | float) and not isinstance(node.value, bool):
            values.add(float(node.value))
        elif isinstance(node.value, str):
            values.update(float(n) for n in _ANY_NUMBER.findall(node.value))
    return values


def is_the_codes_value(number: float, values: set[float]) -> bool:
    return any(abs(number * s - v) < 1e-9 or abs(number / s - v) < 1e-9 for v in values for s in _SCALES)


def figures_in(source: str, name: str) -> list[str]:
    """``name:line: figure | the line`` for every figure that is not the code's own value."""
    values = values_in_code(source)
    found = []
    for line, text in prose_of(source):
        for match in FIGURE.finditer(text):
            number = float((match["number"] or match["decimal"]).replace(",", ""))
            if not is_the_codes_value(number, values):
                found.append(f"{name}:{line}: {match[0].strip()!r} | {text.strip()}")
    return sorted(found, key=lambda f: int(f.split(":")[1]))


def test_no_comment_or_docstring_in_src_or_examples_states_a_measured_figure() -> None:
    found = [
        finding
        for folder in SOURCES
        for path in sorted(folder.rglob("*.py"))
        for finding in figures_in(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == [], "figures (move them to docs/benchmarks.md, say why in words):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "prose",
    [
        "# a check takes 3 µs",
        "# about 2.5 KB each",
        "# 30% of the samples",
        "# 2\u00d7 the peer library",
        "# 3x faster",
        "# commits took 1.2s under load",
        "# 62,191 events/s",
        "# 4 ms at p99",
        '"""Rebuilt on use (about 1.5 us)."""',
        '"""Answers in 40 seconds at worst."""',
    ],
)
def test_a_measured_figure_is_found(prose: str) -> None:
    assert len(figures_in(f"x = 1\n{prose}\n", "m.py")) == 1


@pytest.mark.parametrize(
    "prose",
    [
        "# RFC 9112 section 2.2 allows one",
        "# the 429s' counter",
        "# an HTTP version other than 1.x",
        "# a 32-bit big-endian length",
        "# under the 10,000-user load",
        "# 256 connections at most",
    ],
)
def test_what_is_not_a_figure_is_not_found(prose: str) -> None:
    assert figures_in(f"x = 1\n{prose}\n", "m.py") == []


def test_a_figure_that_is_the_codes_own_value_is_allowed() -> None:
    source = (
        'def check(timeout: float = 0.25) -> None:\n    """Waits at most 0.25 s, warns each 10 s."""\n'
        "    if late > 10.0:\n        pass\n"
    )
    assert figures_in(source, "m.py") == []


def test_a_figure_converted_from_the_codes_value_is_allowed() -> None:
    source = "LIMIT = 1_048_576  # 1 MiB\nWAIT = 0.2  # 200 ms\nSQL = 'substr(x, 1, 257)'  # 257 bytes\n"
    assert figures_in(source, "m.py") == []


def test_a_finding_names_the_file_and_the_line() -> None:
    assert figures_in("x = 1\n\n# commits in 3 ms\n", "src/citadel/m.py") == [
        "src/citadel/m.py:3: '3 ms' | # commits in 3 ms"
    ]
