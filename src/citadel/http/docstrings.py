"""Docstrings (reStructuredText) as the Markdown that OpenAPI's summaries and descriptions are written in."""

from __future__ import annotations

import inspect
import re

__all__ = ["markdown", "summary_and_description"]

# One pass over the inline markup, so that the output of one rule is never read by another.
_INLINE = re.compile(
    r"``(?P<literal>.+?)``"
    r"|:[\w.+-]+(?::[\w.+-]+)*:`(?P<role>[^`]+)`"
    r"|`(?P<text>[^`<]+?)\s*<(?P<url>[^`>]+)>`__?"
    r"|`(?P<reference>[^`]+)`__?"
    r"|`(?P<interpreted>[^`]+)`"
)
_ROLE_TARGET = re.compile(r"^(?P<text>.*?)\s*<[^>]*>$")
_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. (?P<name>[\w-]+)::\s*(?P<rest>.*)$")


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _inline(match: re.Match[str]) -> str:
    found = match.groupdict()
    if found["literal"] is not None:
        return _code(found["literal"])
    if found["role"] is not None:  # :class:`~a.B` is `B`; :ref:`text <target>` is its text
        role = found["role"]
        titled = _ROLE_TARGET.match(role)
        if titled:
            return titled["text"]
        return _code(role[1:].rpartition(".")[2] if role.startswith("~") else role)
    if found["url"] is not None:
        return f"[{found['text']}]({found['url']})"
    if found["reference"] is not None:
        return found["reference"]
    return _code(found["interpreted"])


def markdown(docstring: str) -> str:
    """Return ``docstring`` (reStructuredText, indented as in source) as Markdown: inline literals, roles and
    links rewritten, ``::`` before a literal block made ``:``, directives made bold labels."""
    lines = []
    for line in inspect.cleandoc(docstring).splitlines():
        directive = _DIRECTIVE.match(line)
        if directive:
            label = directive["name"].capitalize()
            line = f"{directive['indent']}**{label}:** {directive['rest']}".rstrip()
        elif line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            line = f"{stripped}:" if stripped else ""
        lines.append(_INLINE.sub(_inline, line))
    return "\n".join(lines)


def summary_and_description(docstring: str) -> tuple[str, str]:
    """Return a docstring's first paragraph as one line of Markdown, and the rest as Markdown ("" if none)."""
    paragraphs = markdown(docstring).split("\n\n", 1)
    summary = " ".join(line.strip() for line in paragraphs[0].splitlines())
    return summary, paragraphs[1].strip("\n") if len(paragraphs) > 1 else ""
