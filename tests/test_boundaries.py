"""The module boundary checker, run against real packages under ``fixtures/boundary_apps`` (parsed by grimp).

Each top-level package there is one small application, one scenario each:

- ``good_shop``: billing imports orders' contract and declares ``depends_on=["orders"]``; both use shared code.
- ``leaky_shop``: orders imports billing's internal ``domain``; shipping imports billing's package root.
- ``undeclared_shop``: orders imports billing's contract but declares no dependency.
- ``cyclic_shop``: orders and billing import each other's contracts (only one direction is declared).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest

from citadel import Application, BoundaryViolation, ConfigurationError, Module, check
from citadel.boundaries import boundary_problems

APPS = Path(__file__).parent / "fixtures" / "boundary_apps"

Load = Callable[..., list[Module]]


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Load:
    """Put the scenario packages on ``sys.path``; return ``load(shop, *names)``, the named modules' Module objects."""
    monkeypatch.syspath_prepend(str(APPS))

    def load_modules(shop: str, *names: str) -> list[Module]:
        return [getattr(importlib.import_module(f"{shop}.{name}"), name) for name in names]

    return load_modules


def violation_of(modules: list[Module]) -> BoundaryViolation:
    with pytest.raises(BoundaryViolation) as caught:
        check(Application(modules))
    return caught.value


# -- modules that keep their boundaries --------------------------------------------------------------


def test_importing_another_modules_contract_with_declared_dependency_passes(load: Load) -> None:
    modules = load("good_shop", "orders", "billing")

    check(Application(modules))  # returns None; raises BoundaryViolation on any problem
    assert boundary_problems(modules) == []


def test_imports_of_packages_that_belong_to_no_module_of_the_application_are_not_judged(load: Load) -> None:
    # billing is not part of this application, so orders' import of billing.domain is ordinary library use.
    assert boundary_problems(load("leaky_shop", "orders")) == []


# -- rule 1: only the contract -----------------------------------------------------------------------


def test_importing_another_modules_internal_raises_boundary_violation_naming_the_import(load: Load) -> None:
    error = violation_of(load("leaky_shop", "orders", "billing"))

    assert len(error.problems) == 1
    [problem] = error.problems
    assert problem.startswith("leaky_shop.orders.domain (line 3: `from leaky_shop.billing.domain import Invoice`)")
    assert "imports leaky_shop.billing.domain, an internal of module 'billing'" in problem
    assert problem.endswith("import leaky_shop.billing.contract (its public contract) instead")
    assert str(error) == f"module boundary check failed (1 problem(s)):\n  - {problem}"


def test_importing_another_modules_package_root_is_a_violation(load: Load) -> None:
    error = violation_of(load("leaky_shop", "shipping", "billing"))

    assert error.problems == [
        "leaky_shop.shipping.domain (line 3: `import leaky_shop.billing`) imports leaky_shop.billing, "
        "an internal of module 'billing'; import leaky_shop.billing.contract (its public contract) instead"
    ]


def test_every_violation_of_an_application_is_listed_in_one_error(load: Load) -> None:
    error = violation_of(load("leaky_shop", "orders", "billing", "shipping"))

    assert [p.split(" ", 1)[0] for p in error.problems] == ["leaky_shop.orders.domain", "leaky_shop.shipping.domain"]
    assert "(2 problem(s))" in str(error)


# -- rule 2: declared dependencies -------------------------------------------------------------------


def test_importing_a_contract_without_declaring_depends_on_is_reported(load: Load) -> None:
    error = violation_of(load("undeclared_shop", "orders", "billing"))

    assert error.problems == [
        "undeclared_shop.orders.domain (line 1: `from undeclared_shop.billing.contract import InvoiceIssued`) "
        "imports undeclared_shop.billing.contract but module 'orders' does not declare depends_on=['billing']"
    ]


# -- rule 3: no cycles -------------------------------------------------------------------------------


def test_modules_importing_each_others_contracts_are_reported_as_a_dependency_cycle(load: Load) -> None:
    problems = boundary_problems(load("cyclic_shop", "orders", "billing"))

    assert "module dependency cycle: billing -> orders -> billing" in problems
    assert any("module 'billing' does not declare depends_on=['orders']" in p for p in problems)


def test_an_import_cycle_is_caught_by_check_even_though_the_application_accepts_the_declared_dependencies(
    load: Load,
) -> None:
    error = violation_of(load("cyclic_shop", "orders", "billing"))

    assert "module dependency cycle: billing -> orders -> billing" in error.problems


def test_application_rejects_a_cycle_in_declared_dependencies() -> None:
    with pytest.raises(ConfigurationError, match=r"cycle: a -> b -> a"):
        Application([Module("a", depends_on=["b"]), Module("b", depends_on=["a"])])


# -- where the code lives ----------------------------------------------------------------------------


def test_a_module_without_package_is_reported_with_the_fix() -> None:
    expected = "module 'loose' has no package; pass package=__name__ in its Module(...)"

    assert boundary_problems([Module("loose")]) == [expected]
    assert violation_of([Module("loose")]).problems == [expected]


def test_a_module_whose_package_does_not_exist_under_a_parsed_root_is_reported(load: Load) -> None:
    modules = [*load("good_shop", "orders"), Module("ghost", package="good_shop.ghost")]

    assert boundary_problems(modules) == ["module 'ghost': package 'good_shop.ghost' is not importable"]


def test_a_module_whose_top_level_package_does_not_exist_is_reported() -> None:
    problems = boundary_problems([Module("ghost", package="no_such_shop.ghost")])

    assert problems == ["module 'ghost': package 'no_such_shop.ghost' is not importable"]
