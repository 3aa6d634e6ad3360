"""The module map: a Mermaid flowchart of the modules, their dependencies and the messages between them, and
the same as lists and a table, for readers without a diagram renderer."""

from __future__ import annotations

from itertools import groupby

from citadel.documenter.model import AppDoc, Flow
from citadel.documenter.text import mermaid_label, page_of

__all__ = ["mermaid", "module_map"]

_PLURAL = {"command": "commands", "query": "queries", "event": "events"}
_ARROW = {"command": "-->", "query": "-->", "event": "-.->"}


def mermaid(doc: AppDoc) -> str:
    """Return the Mermaid flowchart of ``doc``: a node per module; ``==>`` a dependency, ``-->`` the commands or
    queries a module sends to another, ``-.->`` the events a module reads from another (publisher to reader)."""
    ids = {module.name: f"m{i}" for i, module in enumerate(doc.modules)}
    lines = ["flowchart LR"]
    lines += [f"    {ids[m.name]}[{mermaid_label(m.name)}]" for m in doc.modules]
    for module in doc.modules:
        lines += [f"    {ids[module.name]} ==>|{mermaid_label('depends on')}| {ids[d]}" for d in module.depends_on]
    for (sender, receiver, kind), flows in groupby(doc.between(), key=_edge):
        names = sorted({f.cls for f in flows})
        label = mermaid_label(_PLURAL[kind], *names)
        lines.append(f"    {ids[sender]} {_ARROW[kind]}|{label}| {ids[receiver]}")
    return "\n".join(lines) + "\n"


def _edge(flow: Flow) -> tuple[str, str, str]:
    return flow.sender, flow.receiver, flow.kind


def _link(module: str) -> str:
    return f"[{module}]({page_of(module)})"


def module_map(doc: AppDoc) -> str:
    """Return the Markdown page of the module map: the flowchart, each module with its dependencies, and a table
    of every message that goes from one module to another."""
    parts = [
        "# Module map",
        "The modules, the modules each one depends on, and the messages between them. Written by "
        "`citadel docs`: run it again rather than editing this page.",
        "```mermaid\n" + mermaid(doc) + "```",
        "Thick arrows: a module depends on another. Solid arrows: the commands and queries a module sends to "
        "another. Dotted arrows: the events a module reads, from the module that publishes them.",
        "## Modules",
        "\n".join(_module_line(doc, name) for name in (m.name for m in doc.modules)),
        "## Messages between modules",
        _flow_table(doc.between()),
    ]
    return "\n\n".join(parts) + "\n"


def _module_line(doc: AppDoc, name: str) -> str:
    module = next(m for m in doc.modules if m.name == name)
    line = f"- {_link(name)}"
    if module.summary:
        line += f": {module.summary}"
    if module.depends_on:
        line += f" Depends on {', '.join(_link(d) for d in module.depends_on)}."
    return line


def _flow_table(flows: tuple[Flow, ...]) -> str:
    if not flows:
        return "None: no module sends messages to another, or reads another's events."
    rows = ["| from | to | kind | message | by |", "|---|---|---|---|---|"]
    rows += [f"| {_link(f.sender)} | {_link(f.receiver)} | {f.kind} | `{f.message}` | {f.via} |" for f in flows]
    return "\n".join(rows)
