"""The boundary checker on the shop: it passes, and it catches an add-on module reaching into billing."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest

from citadel import Application, BoundaryViolation, Module, check
from citadel.boundaries import boundary_problems
from examples.shop import build_app

ADDONS = Path(__file__).parent.parent / "fixtures" / "shop_addons"

Load = Callable[[str], list[Module]]


@pytest.fixture
def shop_with(monkeypatch: pytest.MonkeyPatch) -> Load:
    """Return ``shop_with(addon)``: the shop's modules plus the add-on's ``Module`` from ``fixtures/shop_addons``."""
    monkeypatch.syspath_prepend(str(ADDONS))

    def load(addon: str) -> list[Module]:
        return [*build_app(secure=False).modules.values(), getattr(importlib.import_module(addon), addon)]

    return load


def test_the_shop_has_no_boundary_problems() -> None:
    assert boundary_problems(build_app(secure=False).modules.values()) == []


def test_the_shop_declares_exactly_its_dependency_graph() -> None:
    declared = {name: set(module.depends_on) for name, module in build_app(secure=False).modules.items()}

    assert declared == {
        "users": set(),
        "content": set(),
        "orders": {"users", "content"},
        "billing": {"orders"},
        "analytics": {"orders", "billing"},
    }


def test_an_addon_using_billings_contract_keeps_the_boundaries(shop_with: Load) -> None:
    assert boundary_problems(shop_with("loyalty")) == []


def test_an_addon_importing_billings_domain_is_reported(shop_with: Load) -> None:
    problems = boundary_problems(shop_with("leaky_loyalty"))

    assert problems == [
        "leaky_loyalty.points (line 1: `from examples.shop.billing.domain import invoice_id_for`) imports "
        "examples.shop.billing.domain, an internal of module 'billing'; "
        "import examples.shop.billing.contract (its public contract) instead"
    ]


def test_checking_an_application_with_the_leaky_addon_raises_boundary_violation(shop_with: Load) -> None:
    with pytest.raises(BoundaryViolation, match=r"examples\.shop\.billing\.domain, an internal of module 'billing'"):
        check(Application(shop_with("leaky_loyalty")))
