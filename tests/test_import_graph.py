"""No import cycles in ``src/citadel``: runtime imports, imports inside functions and imports made only for type
checking all count (grimp parses every file; ``exclude_type_checking_imports=False`` keeps the last kind).

A module graph has a cycle exactly when one of its strongly connected components holds more than one module (or a
module imports itself). Python itself adds no edge: importing ``citadel.app`` runs ``citadel/__init__.py`` first,
but that is no import *by* ``citadel.app``, so ``citadel/__init__.py`` re-exporting ``citadel.app`` closes a cycle
only if some module below imports the package ``citadel`` itself, and then the graph shows that import.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import grimp
import pytest


def build(package: str) -> grimp.ImportGraph:
    """The import graph of ``package``, imports made only for type checking included, read afresh (no cache)."""
    return grimp.build_graph(package, exclude_type_checking_imports=False, cache_dir=None)


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of ``graph`` that form cycles, each sorted, in module order (Tarjan's
    algorithm, iterative: a deep chain of imports must not meet the recursion limit)."""
    modules = sorted(graph.modules)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            module, next_edge = work.pop()
            if next_edge == 0:
                index[module] = low[module] = len(index)
                stack.append(module)
                on_stack.add(module)
            targets = imports[module]
            while next_edge < len(targets):
                imported = targets[next_edge]
                next_edge += 1
                if imported not in index:
                    work += [(module, next_edge), (imported, 0)]
                    break
                if imported in on_stack:
                    low[module] = min(low[module], index[imported])
            else:
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1 or module in imports[module]:
                        cycles.append(sorted(component))
                if work:
                    caller = work[-1][0]
                    low[caller] = min(low[caller], low[module])
    return sorted(cycles)


def describe(graph: grimp.ImportGraph, cycles: list[list[str]]) -> str:
    """Each cycle, then every import between its modules (each lies on a cycle) with the first line that makes it."""
    lines = [f"{len(cycles)} import cycle(s); move what the modules of each share into a lower module:"]
    for number, cycle in enumerate(cycles, 1):
        lines.append(f"cycle {number}: {', '.join(cycle)}")
        members = set(cycle)
        for importer in cycle:
            for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
                details = graph.get_import_details(importer=importer, imported=imported)
                first = min(details, key=lambda d: d["line_number"], default=None)
                where = "line unknown" if first is None else f"line {first['line_number']}: {first['line_contents']}"
                lines.append(f"    {importer} -> {imported}  ({where})")
    return "\n".join(lines)


def write_package(root: Path, name: str, files: dict[str, str]) -> None:
    """Write a package ``name`` under ``root``: each of ``files`` (a module name, "" for ``__init__``) with its text."""
    package = root / name
    package.mkdir()
    for module, text in files.items():
        (package / f"{module or '__init__'}.py").write_text(textwrap.dedent(text))


def test_citadel_has_no_import_cycles() -> None:
    graph = build("citadel")
    cycles = import_cycles(graph)
    assert not cycles, describe(graph, cycles)


def test_an_import_made_only_for_type_checking_closes_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_package(
        tmp_path,
        "graph_probe_typed",
        {
            "": "",
            "a": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from graph_probe_typed.b import B
                """,
            "b": "from graph_probe_typed import a\nB = 1\n",
            "c": "from graph_probe_typed import b\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = build("graph_probe_typed")
    cycles = import_cycles(graph)
    assert cycles == [["graph_probe_typed.a", "graph_probe_typed.b"]]
    report = describe(graph, cycles)
    assert "graph_probe_typed.a -> graph_probe_typed.b  (line 4: from graph_probe_typed.b import B)" in report
    assert "graph_probe_typed.b -> graph_probe_typed.a  (line 1: from graph_probe_typed import a)" in report


def test_an_import_inside_a_function_closes_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_package(
        tmp_path,
        "graph_probe_late",
        {
            "": "",
            "a": "def late() -> None:\n    from graph_probe_late import b\n",
            "b": "import graph_probe_late.a\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(build("graph_probe_late")) == [["graph_probe_late.a", "graph_probe_late.b"]]


def test_a_package_reexporting_its_modules_closes_a_cycle_only_when_one_of_them_imports_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_package(
        tmp_path,
        "graph_probe_package",
        {
            "": "from graph_probe_package.app import App\nfrom graph_probe_package.errors import Failed\n",
            "app": "from graph_probe_package.errors import Failed\nApp = Failed\n",
            "errors": "Failed = Exception\n",
            "late": "from graph_probe_package import App\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(build("graph_probe_package")) == []

    (tmp_path / "graph_probe_package" / "errors.py").write_text("import graph_probe_package\nFailed = Exception\n")
    cycles = import_cycles(build("graph_probe_package"))
    assert cycles == [["graph_probe_package", "graph_probe_package.app", "graph_probe_package.errors"]]
