"""How a bound projection calls its handlers: each receives what it writes, in the transaction it is applied in,
and nothing is left on the projector. The transactions here are in-memory fakes of a store's: the tests are
about the projection's own logic."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from citadel import AccessDenied, ConfigurationError, Event, EventRegistry, ProjectionContext, Projector, View
from citadel.projection import BoundProjection


class Noted(Event, name="notes.Noted"):
    key: str
    text: str


class FakeWriter:
    """The writer of one view in one fake transaction: a dict of documents."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}

    def __setitem__(self, key: str, doc: Any) -> None:
        self.docs[key] = doc

    async def get(self, key: str) -> Any:
        await asyncio.sleep(0)  # a read yields to the loop, as a store's does
        return self.docs.get(key)


class FakeTransaction:
    """A store transaction as a projection sees it: one writer per view (by the view's module and name)."""

    def __init__(self) -> None:
        self.writers: dict[str, FakeWriter] = {}

    def writer(self, view: View[Any]) -> FakeWriter:
        return self.writers.setdefault(view.qualified_name, FakeWriter())


@dataclass
class FakeRecord:
    """What a projection reads of a stored record."""

    event: Noted
    type: str = "notes.Noted"
    forgotten: bool = False


def bind(projector: Projector) -> BoundProjection:
    registry = EventRegistry()
    registry.register(Noted)
    return BoundProjection(projector, "notes", registry)


async def apply(binding: BoundProjection, event: Noted, tx: FakeTransaction) -> None:
    result = binding.apply(FakeRecord(event), tx)  # type: ignore[arg-type]
    if result is not None:
        await result


class Notes(Projector):
    notes = View("notes")

    def handle_noted(self, event: Noted, ctx: ProjectionContext) -> None:
        ctx.view(self.notes)[event.key] = {"text": event.text}


class SeedNotes(Projector):
    """The seed's one-argument form; the read yields, so two transactions can interleave."""

    notes = View("notes")

    async def handle_noted(self, event: Noted) -> None:
        before = await self.notes.get(event.key)  # type: ignore[attr-defined]
        self.notes[event.key] = {"text": event.text, "before": before}  # type: ignore[index]


async def test_a_handler_with_a_context_writes_the_view_of_the_transaction_it_is_applied_in() -> None:
    binding = bind(Notes())
    first, second = FakeTransaction(), FakeTransaction()
    await apply(binding, Noted(key="a", text="one"), first)
    await apply(binding, Noted(key="b", text="two"), second)
    assert first.writers["notes.notes"].docs == {"a": {"text": "one"}}
    assert second.writers["notes.notes"].docs == {"b": {"text": "two"}}


async def test_the_seed_form_writes_each_interleaved_transaction_apart_and_leaves_the_projector_unchanged() -> None:
    projector = SeedNotes()
    state_before = dict(vars(projector))
    binding, twin = bind(projector), bind(projector)  # one projector serving two applications
    first, second = FakeTransaction(), FakeTransaction()
    await asyncio.gather(
        apply(binding, Noted(key="a", text="one"), first), apply(twin, Noted(key="a", text="two"), second)
    )
    assert first.writers["notes.notes"].docs == {"a": {"text": "one", "before": None}}
    assert second.writers["notes.notes"].docs == {"a": {"text": "two", "before": None}}
    assert vars(projector) == state_before
    assert isinstance(SeedNotes.notes, View)


async def test_a_handler_writing_a_view_its_projector_does_not_declare_is_refused() -> None:
    elsewhere = View("elsewhere")
    projector = Projector("notes.stray", views=[View("notes")])

    @projector.on(Noted)
    def stray(event: Noted, ctx: ProjectionContext) -> None:
        ctx.view(elsewhere)[event.key] = {}

    with pytest.raises(AccessDenied, match="may only write the views it declares"):
        await apply(bind(projector), Noted(key="a", text="one"), FakeTransaction())


def test_a_handler_taking_more_than_the_event_and_the_context_is_refused_at_binding() -> None:
    projector = Projector("notes.wide", views=[View("notes")])

    @projector.on(Noted)
    def wide(event: Noted, ctx: ProjectionContext, extra: int) -> None:
        return None

    with pytest.raises(ConfigurationError, match=r"must take \(event, ctx\) or \(event\)"):
        bind(projector)
