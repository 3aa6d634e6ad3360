"""A module's canvas: one page that says what the module offers and what it uses, in the manner of Spring
Modulith's application module canvas.

The page opens with the canvas table (base package, dependencies, commands, queries, events published and
listened to, messages sent, views, process managers, projections), then details each of them: summaries from
the docstrings, fields with their types, who sends or reads each message.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from citadel.documenter.model import AppDoc, Flow, MessageDoc, ModuleDoc, ProcessManagerDoc, ProjectionDoc
from citadel.documenter.text import page_of

__all__ = ["canvas"]

_NONE = "—"


def canvas(module: ModuleDoc, doc: AppDoc) -> str:
    """Return the Markdown page of ``module``'s canvas, within the application ``doc``."""
    listened = [f for f in doc.flows if f.receiver == module.name and f.kind == "event"]
    sent = [f for f in doc.flows if f.sender == module.name and f.receiver != module.name and f.kind != "event"]
    messages = {m.name: m for other in doc.modules for m in (*other.commands, *other.queries, *other.events)}
    parts = [f"# The {module.name} module"]
    if module.summary:
        parts.append(module.summary)
    parts.append(_table(module, listened, sent))
    sections = [
        ("Commands", [_message(m, doc) for m in module.commands]),
        ("Queries", [_message(m, doc) for m in module.queries]),
        ("Events published", [_message(m, doc) for m in module.events]),
        ("Events listened to", [_listened(listened, messages)] if listened else []),
        ("Messages sent to other modules", [_sent(sent)] if sent else []),
        ("Process managers", [_manager(p) for p in module.process_managers]),
        ("Projections", [_projection(p) for p in module.projections]),
        ("Views", [_views(module)] if module.views else []),
    ]
    for title, bodies in sections:
        if bodies:
            parts += [f"## {title}", *bodies]
    return "\n\n".join(parts) + "\n"


def _link(module: str) -> str:
    return f"[{module}]({page_of(module)})"


def _codes(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or _NONE


def _table(module: ModuleDoc, listened: list[Flow], sent: list[Flow]) -> str:
    rows = [
        ("Base package", f"`{module.package}`" if module.package else _NONE),
        ("Depends on", ", ".join(_link(d) for d in module.depends_on) or _NONE),
        ("Used by", ", ".join(_link(d) for d in module.used_by) or _NONE),
        ("Commands", _codes(m.cls for m in module.commands)),
        ("Queries", _codes(m.cls for m in module.queries)),
        ("Events published", _codes(m.cls for m in module.events)),
        ("Events listened to", _codes(sorted({f.message for f in listened}))),
        ("Messages sent", _codes(sorted({f.message for f in sent}))),
        ("Views", _codes(v.name for v in module.views)),
        ("Process managers", _codes(p.name for p in module.process_managers)),
        ("Projections", ", ".join(f"`{p.name}` ({_mode(p)})" for p in module.projections) or _NONE),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def _mode(projection: ProjectionDoc) -> str:
    return "inline" if projection.inline else "async"


def _message(message: MessageDoc, doc: AppDoc) -> str:
    lines = [f"### `{message.name}`", ""]
    if message.summary:
        lines += [message.summary, ""]
    users = [f for f in doc.flows if f.message == message.name and f.receiver != f.sender]
    if message.kind == "event":
        users = [f for f in users if f.sender == message.module]
        who = "; read by " + ", ".join(f"{_link(f.receiver)} ({f.via})" for f in users) if users else ""
    else:
        users = [f for f in users if f.receiver == message.module]
        who = "; sent by " + ", ".join(f"{_link(f.sender)} ({f.via})" for f in users) if users else ""
    lines += [f"{message.access}{who}.", ""]
    if not message.fields:
        lines.append("No fields.")
    for field in message.fields:
        default = "" if field.default is None else f", default `{field.default}`"
        lines.append(f"- `{field.name}`: `{field.type}`{default}")
    return "\n".join(lines)


def _listened(flows: list[Flow], messages: dict[str, MessageDoc]) -> str:
    lines = []
    # sorted by sender, then message; a message has one sender, so its readers are together
    for name, group in groupby(flows, key=lambda f: f.message):
        readers = list(group)
        line = f"- `{name}` from {_link(readers[0].sender)}, read by {', '.join(f.via for f in readers)}"
        summary = messages[name].summary if name in messages else ""
        lines.append(f"{line}: {summary}" if summary else line)
    return "\n".join(lines)


def _sent(flows: list[Flow]) -> str:
    return "\n".join(f"- `{f.message}` ({f.kind}) to {_link(f.receiver)}, by {f.via}" for f in flows)


def _manager(manager: ProcessManagerDoc) -> str:
    lines = [f"### `{manager.name}`", ""]
    for reaction in manager.reactions:
        if reaction.commands is None:
            sends = "may send any command (its return annotation names none)"
        else:
            sends = f"sends {_codes(reaction.commands)}" if reaction.commands else "sends nothing"
        lines.append(f"- on `{reaction.event}`: `{reaction.function}` {sends}")
    return "\n".join(lines)


def _projection(projection: ProjectionDoc) -> str:
    mode = (
        "Inline: updated in the transaction of the append (read-your-writes)."
        if projection.inline
        else "Async: follows the log after the commit, from its own checkpoint."
    )
    lines = [f"### `{projection.name}`", ""]
    if projection.summary:
        lines += [projection.summary, ""]
    lines += [mode, "", f"- reads {_codes(projection.events)}", f"- writes {_codes(projection.views)}"]
    return "\n".join(lines)


def _views(module: ModuleDoc) -> str:
    lines = []
    for view in module.views:
        line = f"- `{view.name}`: documents of `{view.doc_type}`"
        if view.indexes:
            line += f"; indexed by {_codes(view.indexes)}"
        if view.unique:
            line += f"; unique {_codes(view.unique)}"
        lines.append(line)
    return "\n".join(lines)
