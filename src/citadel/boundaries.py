"""The module boundary checker: proves from the import graph that modules keep to their contracts.

Rules, for every pair of modules A and B of an application:

1. Code in A may import from B only B's contract module (the module given as ``contract=``, by default
   ``<B's package>.contract``), never B's internals (nor B's package root, which holds its ``Module``).
2. If A imports B's contract, A declares ``depends_on=["B"]``.
3. Module dependencies (declared and imported) form no cycle.

The import graph comes from ``grimp``, which parses every file of the packages involved.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import TYPE_CHECKING

import grimp

from citadel.errors import BoundaryViolation
from citadel.module import dependency_cycles

if TYPE_CHECKING:
    from citadel.app import Application
    from citadel.module import Module

__all__ = ["boundary_problems", "check"]


def check(app: Application) -> None:
    """Raise ``BoundaryViolation`` listing every boundary problem of ``app``'s modules; return if none."""
    problems = boundary_problems(app.modules.values())
    if problems:
        raise BoundaryViolation(problems)


def boundary_problems(modules: Iterable[Module]) -> list[str]:
    """Return a readable line per boundary problem of ``modules`` (empty when they keep their boundaries)."""
    modules = list(modules)
    problems = [
        f"module {m.name!r} has no package; pass package=__name__ in its Module(...)" for m in modules if not m.package
    ]
    located = []
    for module in modules:
        if module.package and not _importable(module.package.split(".")[0]):
            problems.append(f"module {module.name!r}: package {module.package!r} is not importable")
        elif module.package:
            located.append(module)
    if not located:
        return problems
    roots = sorted({m.package.split(".")[0] for m in located if m.package})
    graph = grimp.build_graph(*roots, cache_dir=None)
    edges: dict[str, set[str]] = {m.name: set(m.depends_on) for m in located}
    for module in located:
        problems.extend(_imports_of(graph, module, located, edges))
    problems.extend("module dependency cycle: " + " -> ".join(c) for c in dependency_cycles(edges))
    return problems


def _importable(root: str) -> bool:
    try:
        return importlib.util.find_spec(root) is not None
    except (ImportError, ValueError):
        return False


def _contract_name(module: Module) -> str:
    if module.contract is not None:
        return module.contract.__name__
    return f"{module.package}.contract"


def _owner(name: str, modules: list[Module]) -> Module | None:
    best: Module | None = None
    for module in modules:
        package = module.package or ""
        if (name == package or name.startswith(package + ".")) and (
            best is None or len(package) > len(best.package or "")
        ):
            best = module
    return best


def _imports_of(
    graph: grimp.ImportGraph, module: Module, modules: list[Module], edges: dict[str, set[str]]
) -> list[str]:
    package = module.package or ""
    if package not in graph.modules:
        return [f"module {module.name!r}: package {package!r} is not importable"]
    problems: list[str] = []
    importers = {package} | graph.find_descendants(package)
    for importer in sorted(importers):
        if _owner(importer, modules) is not module:
            continue  # a nested module's code is judged as that module
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            owner = _owner(imported, modules)
            if owner is None or owner is module:
                continue
            contract = _contract_name(owner)
            where = _where(graph, importer, imported)
            if imported != contract:
                problems.append(
                    f"{importer}{where} imports {imported}, an internal of module {owner.name!r}; "
                    f"import {contract} (its public contract) instead"
                )
            elif owner.name not in module.depends_on:
                problems.append(
                    f"{importer}{where} imports {contract} but module {module.name!r} does not declare "
                    f"depends_on=[{owner.name!r}]"
                )
            edges[module.name].add(owner.name)
    return problems


def _where(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    if not details:
        return ""
    first = details[0]
    return f" (line {first['line_number']}: `{first['line_contents']}`)"
