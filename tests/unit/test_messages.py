"""Message types (frozen keyword-only structs with a stable name and version) and the event registry."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citadel import (
    Command,
    ConfigurationError,
    Event,
    EventRegistry,
    InvalidMessage,
    Message,
    Query,
    UnknownEventType,
    Upcaster,
)
from citadel.messages import decode_json, encode_json, message_name


class PlaceOrder(Command, name="unit.messages.PlaceOrder"):
    order_id: str


class GetOrder(Query, name="unit.messages.GetOrder"):
    order_id: str


class OrderPlaced(Event, name="unit.messages.OrderPlaced", version=2):
    order_id: str
    total: int


class RushOrderPlaced(OrderPlaced):
    pass


class SameNameAsOrderPlaced(Event, name="unit.messages.OrderPlaced"):
    pass


class InvoiceIssued(Event, name="unit.messages.InvoiceIssued", version=3):
    invoice_id: str
    amount_cents: int
    currency: str


class Measured(Event, name="unit.messages.Measured"):
    value: float


class Sample(Event, name="unit.messages.Sample"):
    text: str
    count: int
    ratio: float
    flag: bool
    tags: list[str]
    scores: dict[str, int]
    note: str | None = None


def rename_amount(raw: dict[str, Any]) -> dict[str, Any]:
    raw = dict(raw)
    raw["amount_cents"] = raw.pop("amount")
    return raw


def add_currency(raw: dict[str, Any]) -> dict[str, Any]:
    return {"currency": "EUR", **raw}


def invoice_registry(*from_versions: int) -> EventRegistry:
    registry = EventRegistry([InvoiceIssued])
    steps = {1: rename_amount, 2: add_currency}
    for version in from_versions:
        registry.add_upcaster(Upcaster(InvoiceIssued, version, steps[version]))
    return registry


MESSAGES: list[Message] = [PlaceOrder(order_id="o-1"), GetOrder(order_id="o-1"), OrderPlaced(order_id="o-1", total=5)]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_are_frozen(message: Message) -> None:
    with pytest.raises(AttributeError, match="immutable"):
        message.order_id = "o-2"  # type: ignore[attr-defined]


@pytest.mark.parametrize("message_type", [PlaceOrder, GetOrder, OrderPlaced], ids=lambda t: t.__name__)
def test_message_fields_cannot_be_passed_positionally(message_type: type[Message]) -> None:
    with pytest.raises(TypeError):
        message_type(*["o-1"] * len(message_type.__struct_fields__))


def test_a_message_may_declare_a_required_field_after_a_defaulted_one() -> None:
    class Reordered(Event, name="unit.messages.Reordered"):
        note: str = ""
        order_id: str  # type: ignore[misc]

    assert Reordered(order_id="o-1").note == ""


def test_class_keywords_set_the_message_name_and_version() -> None:
    assert OrderPlaced.__message_name__ == "unit.messages.OrderPlaced"
    assert OrderPlaced.__message_version__ == 2


def test_a_subclass_does_not_inherit_the_name_or_version() -> None:
    assert RushOrderPlaced.__message_name__ is None
    assert RushOrderPlaced.__message_version__ == 1
    assert message_name(RushOrderPlaced, "orders") == "orders.RushOrderPlaced"


def test_a_declared_name_wins_over_the_module_prefix() -> None:
    assert message_name(OrderPlaced, "orders") == "unit.messages.OrderPlaced"


@pytest.mark.parametrize("name", ["", "has space", "1order", "orders.", ".orders", "orders..Placed", "orders/Placed"])
def test_a_name_that_is_not_a_dotted_identifier_is_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="dotted identifier"):

        class Bad(Event, name=name):
            pass


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ConfigurationError):

        class Bad(Event, name="orders.Placed\n"):
            pass


@pytest.mark.parametrize("version", [0, -1, "2", 1.5, None])
def test_a_version_that_is_not_a_positive_integer_is_refused(version: Any) -> None:
    with pytest.raises(ConfigurationError, match="version must be an integer >= 1"):

        class Bad(Event, name="unit.messages.Bad", version=version):
            pass


def test_a_boolean_version_is_refused() -> None:
    with pytest.raises(ConfigurationError):

        class Bad(Event, name="unit.messages.Bad", version=True):
            pass


def test_registering_records_the_name_version_and_class() -> None:
    registry = EventRegistry()
    info = registry.register(OrderPlaced)
    assert (info.cls, info.name, info.version) == (OrderPlaced, "unit.messages.OrderPlaced", 2)
    assert OrderPlaced in registry
    assert registry.named("unit.messages.OrderPlaced") is info


def test_registering_the_same_class_twice_is_idempotent() -> None:
    registry = EventRegistry([OrderPlaced])
    assert registry.register(OrderPlaced) is registry.of(OrderPlaced)
    assert len(list(registry)) == 1


def test_two_classes_under_one_name_are_refused() -> None:
    registry = EventRegistry([OrderPlaced])
    with pytest.raises(ConfigurationError, match="used by both OrderPlaced and SameNameAsOrderPlaced"):
        registry.register(SameNameAsOrderPlaced)


def test_one_class_under_a_second_name_is_refused() -> None:
    registry = EventRegistry([OrderPlaced])
    with pytest.raises(ConfigurationError, match="cannot also be"):
        registry.register(OrderPlaced, name="unit.messages.Other")


def test_only_event_classes_can_be_registered() -> None:
    with pytest.raises(ConfigurationError, match="not an Event subclass"):
        EventRegistry().register(PlaceOrder)  # type: ignore[arg-type]


def test_an_event_round_trips_through_encode_and_decode() -> None:
    registry = EventRegistry([OrderPlaced])
    name, version, payload = registry.encode(OrderPlaced(order_id="o-1", total=42))
    assert (name, version) == ("unit.messages.OrderPlaced", 2)
    assert registry.decode(name, version, payload) == OrderPlaced(order_id="o-1", total=42)


def test_encoding_an_unregistered_event_raises_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType):
        EventRegistry().encode(OrderPlaced(order_id="o-1", total=1))


def test_decoding_an_unknown_name_raises_unknown_event_type_which_is_a_lookup_error() -> None:
    with pytest.raises(UnknownEventType, match=r"'unit\.messages\.Nope'") as caught:
        EventRegistry([OrderPlaced]).decode("unit.messages.Nope", 1, b"{}")
    assert isinstance(caught.value, LookupError)


@pytest.mark.parametrize("version", [2, 1], ids=["current", "older"])
def test_a_malformed_payload_raises_invalid_message_which_is_a_value_error(version: int) -> None:
    registry = EventRegistry([OrderPlaced])
    with pytest.raises(InvalidMessage, match="malformed stored payload") as caught:
        registry.decode("unit.messages.OrderPlaced", version, b'{"order_id": ')
    assert isinstance(caught.value, ValueError)


def test_a_field_of_the_wrong_type_raises_invalid_message_naming_the_field() -> None:
    registry = EventRegistry([OrderPlaced])
    with pytest.raises(InvalidMessage, match="Expected `int`, got `str`") as caught:
        registry.decode("unit.messages.OrderPlaced", 2, b'{"order_id": "o-1", "total": "ten"}')
    assert caught.value.path == "$.total"


def test_a_payload_stored_at_a_newer_version_raises_invalid_message() -> None:
    with pytest.raises(InvalidMessage, match="newer than this code's version 2"):
        EventRegistry([OrderPlaced]).decode("unit.messages.OrderPlaced", 3, b'{"order_id": "o-1", "total": 1}')


def test_an_old_payload_is_upcast_step_by_step_into_the_current_class() -> None:
    event = invoice_registry(1, 2).decode("unit.messages.InvoiceIssued", 1, b'{"invoice_id": "i-1", "amount": 250}')
    assert event == InvoiceIssued(invoice_id="i-1", amount_cents=250, currency="EUR")


def test_upcasting_starts_at_the_stored_version() -> None:
    payload = b'{"invoice_id": "i-1", "amount_cents": 250}'
    event = invoice_registry(2).decode("unit.messages.InvoiceIssued", 2, payload)
    assert event == InvoiceIssued(invoice_id="i-1", amount_cents=250, currency="EUR")


def test_a_missing_upcaster_step_raises_invalid_message() -> None:
    with pytest.raises(InvalidMessage, match="needs an upcaster from version 1"):
        invoice_registry(2).decode("unit.messages.InvoiceIssued", 1, b'{"invoice_id": "i-1", "amount": 250}')


def test_an_old_payload_that_is_not_an_object_raises_invalid_message() -> None:
    with pytest.raises(InvalidMessage, match="not a JSON object"):
        invoice_registry(1, 2).decode("unit.messages.InvoiceIssued", 1, b"[1, 2]")


def test_an_upcast_payload_that_does_not_fit_the_class_raises_invalid_message_with_a_path() -> None:
    with pytest.raises(InvalidMessage) as caught:
        invoice_registry(1, 2).decode("unit.messages.InvoiceIssued", 1, b'{"invoice_id": "i-1", "amount": "x"}')
    assert caught.value.path == "$.amount_cents"


@pytest.mark.parametrize("from_version", [0, 3, 4])
def test_an_upcaster_outside_the_class_versions_is_refused(from_version: int) -> None:
    with pytest.raises(ConfigurationError, match="useless"):
        invoice_registry().add_upcaster(Upcaster(InvoiceIssued, from_version, add_currency))


def test_a_second_upcaster_for_one_step_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="two upcasters"):
        invoice_registry(2).add_upcaster(Upcaster(InvoiceIssued, 2, add_currency))


def test_an_upcaster_for_an_unregistered_event_raises_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType):
        EventRegistry().add_upcaster(Upcaster(InvoiceIssued, 1, rename_amount))


def test_decode_json_reads_what_encode_json_wrote() -> None:
    assert decode_json(encode_json(PlaceOrder(order_id="o-1")), PlaceOrder) == PlaceOrder(order_id="o-1")


def test_decode_json_accepts_text() -> None:
    assert decode_json('{"order_id": "o-1"}', GetOrder) == GetOrder(order_id="o-1")


def test_decode_json_of_malformed_json_raises_invalid_message_without_a_path() -> None:
    with pytest.raises(InvalidMessage, match="malformed JSON for PlaceOrder") as caught:
        decode_json(b"{", PlaceOrder)
    assert caught.value.path is None


def test_decode_json_of_a_wrong_field_type_raises_invalid_message_naming_the_field() -> None:
    with pytest.raises(InvalidMessage, match="invalid PlaceOrder") as caught:
        decode_json(b'{"order_id": 7}', PlaceOrder)
    assert caught.value.path == "$.order_id"


def test_decode_json_of_a_missing_field_raises_invalid_message() -> None:
    with pytest.raises(InvalidMessage, match="missing required field `order_id`"):
        decode_json(b"{}", PlaceOrder)


def test_a_non_finite_float_is_refused_when_encoded_for_storage() -> None:
    registry = EventRegistry([Measured])
    with pytest.raises(InvalidMessage, match="inf or nan"):
        registry.encode(Measured(value=math.inf))


samples = st.builds(
    Sample,
    text=st.text(),
    count=st.integers(),
    ratio=st.floats(allow_nan=False, allow_infinity=False),
    flag=st.booleans(),
    tags=st.lists(st.text()),
    scores=st.dictionaries(st.text(), st.integers(min_value=-(2**63), max_value=2**64 - 1)),
    note=st.none() | st.text(),
)


@settings(database=None)
@given(samples)
def test_any_event_round_trips_through_the_registry_unchanged(event: Sample) -> None:
    registry = EventRegistry([Sample])
    assert registry.decode(*registry.encode(event)) == event
