"""Writing module documentation for any application: names Mermaid reserves, a module called ``modules``, file
names, reactions without annotations, and the SVG map when a renderer is there or fails."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from citadel import Application, Command, CommandContext, Event, Module, ProcessManager, Projector, View
from citadel.documenter import pages, write_docs
from citadel.documenter.text import mermaid_label, page_of
from citadel.errors import ConfigurationError


class Ping(Command, name="end.Ping"):
    """Ping "it" with <care> & no | pipes."""

    times: int


class Pinged(Event, name="end.Pinged"):
    times: int


class Echo(Command, name="graph.Echo"):
    times: int


async def ping(command: Ping, ctx: CommandContext) -> None:
    ctx.append("ping", [Pinged(times=command.times)])


async def echo(command: Echo, ctx: CommandContext) -> None:
    return None


echoing = ProcessManager("graph.echoing")
pings = Projector("end.pings", views=[View("pings")])


@pings.on(Pinged)
def count_ping(event: Pinged) -> None:
    return None


@echoing.on(Pinged)
def echo_ping(event: Pinged):  # type: ignore[no-untyped-def]  # no annotation: what it sends is read from its body
    return Echo(times=event.times)


def small_app() -> Application:
    """Modules named ``end`` and ``graph`` (words of Mermaid's syntax) and ``modules`` (the map's own name)."""
    return Application(
        [
            Module("end", package=__name__, contract=[Ping, Pinged], commands={Ping: ping}, projections=[pings]),
            Module(
                "graph",
                package=__name__,
                contract=[Echo],
                commands={Echo: echo},
                process_managers=[echoing],
                depends_on=["end"],
            ),
            Module("modules", depends_on=["graph"]),  # no package: no summary
        ],
        store="sqlite:///:memory:",
    )


def test_mermaid_nodes_have_their_own_ids_and_quoted_labels() -> None:
    diagram = pages(small_app())["modules.md"].split("```mermaid\n", 1)[1].split("```", 1)[0]
    lines = diagram.splitlines()
    assert lines[:4] == ["flowchart LR", '    m0["end"]', '    m1["graph"]', '    m2["modules"]']
    assert '    m1 ==>|"depends on"| m0' in lines
    assert '    m0 -.->|"events<br/>Pinged"| m1' in lines
    assert all(re.match(r"(flowchart LR|    m[0-2][ \[])", line) for line in lines), diagram


def test_a_mermaid_label_escapes_what_would_end_it() -> None:
    assert mermaid_label('say "hi" <b> & a|b') == '"say #quot;hi#quot; #lt;b#gt; #amp; a#124;b"'
    assert mermaid_label("events", "A") == '"events<br/>A"'


def test_a_module_called_modules_gets_a_canvas_beside_the_map() -> None:
    written = pages(small_app())
    assert sorted(written) == ["end.md", "graph.md", "module-modules.md", "modules.md"]
    assert written["modules.md"].startswith("# Module map\n")
    assert written["module-modules.md"].startswith("# The modules module\n")
    assert "- [modules](module-modules.md) Depends on [graph](graph.md)." in written["modules.md"]


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "Orders", "x.md"])
def test_a_name_that_could_leave_the_folder_names_no_page(name: str) -> None:
    with pytest.raises(ConfigurationError, match="lowercase identifiers"):
        page_of(name)


def test_the_commands_of_a_reaction_without_annotation_are_read_from_its_body() -> None:
    graph = pages(small_app())["graph.md"]
    assert "- on `end.Pinged`: `echo_ping` sends `graph.Echo`" in graph
    assert "| Events listened to | `end.Pinged` |" in graph


def test_a_summary_keeps_its_quotes_and_brackets_out_of_the_map() -> None:
    end = pages(small_app())["end.md"]
    assert 'Ping "it" with <care> & no | pipes.' in end
    assert "sent by" not in end.split("### `end.Ping`", 1)[1]  # nobody sends it: graph reads its event only


def test_writing_twice_gives_the_same_files(tmp_path: Path) -> None:
    first = write_docs(small_app(), tmp_path / "a", renderer=None)
    second = write_docs(small_app(), tmp_path / "b", renderer=None)
    assert [p.name for p in first.pages] == [p.name for p in second.pages]
    for a, b in zip(first.pages, second.pages, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_without_a_renderer_the_svg_is_skipped_and_the_reason_given(tmp_path: Path) -> None:
    written = write_docs(small_app(), tmp_path, renderer="no-such-mermaid-renderer")
    assert written.svg is None
    assert written.svg_skipped == "no-such-mermaid-renderer (the Mermaid CLI) is not on PATH"
    assert not (tmp_path / "modules.svg").exists()
    assert (tmp_path / "modules.md").is_file()


def fake_renderer(folder: Path, body: str) -> Path:
    """An executable standing in for the Mermaid CLI: ``--input FILE --output FILE`` then ``body``."""
    script = folder / "mmdc"
    script.write_text(f'#!/bin/sh\nin="$2"; out="$4"\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_with_a_renderer_the_map_is_written_as_svg(tmp_path: Path) -> None:
    renderer = fake_renderer(tmp_path, '{ echo "<svg>"; cat "$in"; echo "</svg>"; } > "$out"')
    written = write_docs(small_app(), tmp_path / "docs", renderer=str(renderer))
    assert written.svg == tmp_path / "docs" / "modules.svg"
    assert written.svg_skipped is None
    assert '<svg>\nflowchart LR\n    m0["end"]' in written.svg.read_text()


def test_a_failing_renderer_is_reported_and_the_pages_are_still_written(tmp_path: Path) -> None:
    renderer = fake_renderer(tmp_path, 'echo "no browser to render with" >&2; exit 1')
    written = write_docs(small_app(), tmp_path / "docs", renderer=str(renderer))
    assert written.svg is None
    assert written.svg_skipped == "mmdc failed: no browser to render with"
    assert (tmp_path / "docs" / "modules.md").is_file()


def test_a_projector_used_with_on_has_no_summary_of_the_framework_class() -> None:
    projections = pages(small_app())["end.md"].split("## Projections\n", 1)[1]
    assert projections.startswith("\n### `end.pings`\n\nInline: updated in the transaction of the append")
    assert "read-model builder" not in projections
