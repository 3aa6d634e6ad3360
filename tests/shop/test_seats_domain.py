"""The seats decider and the order's side of reserving, given past events and one command: pure, no store."""

from __future__ import annotations

import pytest

from citadel import Event, InvalidCommand
from citadel.testing import given
from examples.shop.content.contract import (
    ConfirmSeats,
    ReleaseSeats,
    ReserveSeats,
    SeatsConfirmed,
    SeatsRefused,
    SeatsReleased,
    SeatsReserved,
)
from examples.shop.content.domain import ITEM, ContentPublished, CreateItem
from examples.shop.content.seats import SEATS
from examples.shop.orders.contract import (
    CancelOrder,
    MarkOrderPaid,
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderPaid,
    OrderRefused,
    OrderReserved,
)
from examples.shop.orders.domain import (
    ORDER,
    MarkSeatsReserved,
    OrderSeatsHeld,
    PlaceOrder,
    RefuseOrder,
    SeatsGivenBack,
    SeatsPaidFor,
    SeatsRequested,
)

WORKSHOP = ContentPublished(content_id="w", title="Live", body="", price=10, seats=3, hold_seconds=60)
ANN = SeatsReserved(content_id="w", order_id="ann", quantity=2, seats_left=1, expires_at=160.0)


def reserve(order_id: str, quantity: int = 1, at: float = 100.0) -> ReserveSeats:
    return ReserveSeats(content_id="w", order_id=order_id, quantity=quantity, at=at)


def test_publishing_a_workshop_records_its_seats_and_hold() -> None:
    given(ITEM).when(CreateItem(content_id="w", title="Live", body="", price=10, seats=3, hold_seconds=60)).then(
        WORKSHOP
    )


@pytest.mark.parametrize(("seats", "hold", "reason"), [(0, 60, "seats"), (3, -1, "hold")])
def test_a_workshop_without_seats_or_with_a_negative_hold_is_invalid(seats: int, hold: int, reason: str) -> None:
    command = CreateItem(content_id="w", title="Live", body="", price=10, seats=seats, hold_seconds=hold)
    given(ITEM).when(command).then_raises(InvalidCommand, match=reason)


def test_a_reservation_holds_seats_until_its_time_plus_the_hold() -> None:
    given(SEATS, WORKSHOP).when(reserve("ann", 2, at=100.0)).then(ANN)


def test_a_reservation_beyond_the_seats_left_is_refused_as_an_event() -> None:
    given(SEATS, WORKSHOP, ANN).when(reserve("ben", 2, at=159.0)).then(
        SeatsRefused(content_id="w", order_id="ben", quantity=2, seats_left=1, reason="sold out")
    )


def test_expired_holds_are_released_before_the_seats_are_counted() -> None:
    given(SEATS, WORKSHOP, ANN).when(reserve("ben", 3, at=160.0)).then(
        SeatsReleased(content_id="w", order_id="ann", quantity=2, seats_left=3, expired=True),
        SeatsReserved(content_id="w", order_id="ben", quantity=3, seats_left=0, expires_at=220.0),
    )


@pytest.mark.parametrize(
    "answer",
    [ANN, SeatsRefused(content_id="w", order_id="ann", quantity=2, seats_left=0, reason="sold out")],
)
def test_a_redelivered_reservation_decides_nothing(answer: SeatsReserved | SeatsRefused) -> None:
    given(SEATS, WORKSHOP, answer).when(reserve("ann", 2, at=500.0)).then()


def test_paying_confirms_a_hold_even_after_its_time_when_nobody_took_it() -> None:
    given(SEATS, WORKSHOP, ANN).when(ConfirmSeats(content_id="w", order_id="ann")).then(
        SeatsConfirmed(content_id="w", order_id="ann", quantity=2)
    )


def test_confirming_a_released_hold_decides_nothing() -> None:
    released = SeatsReleased(content_id="w", order_id="ann", quantity=2, seats_left=3, expired=True)
    given(SEATS, WORKSHOP, ANN, released).when(ConfirmSeats(content_id="w", order_id="ann")).then()


def test_releasing_gives_back_sold_seats_and_a_second_release_nothing() -> None:
    sold = SeatsConfirmed(content_id="w", order_id="ann", quantity=2)
    released = SeatsReleased(content_id="w", order_id="ann", quantity=2, seats_left=3, expired=False)
    given(SEATS, WORKSHOP, ANN, sold).when(ReleaseSeats(content_id="w", order_id="ann")).then(released)
    given(SEATS, WORKSHOP, ANN, sold, released).when(ReleaseSeats(content_id="w", order_id="ann")).then()


def test_ten_requests_one_after_another_hold_the_three_seats_and_refuse_seven() -> None:
    history: list[Event] = [WORKSHOP]
    for index in range(10):
        history += SEATS.decide(reserve(f"o{index}", 1, at=100.0 + index), SEATS.fold(history))
    state = SEATS.fold(history)
    assert (sorted(state.held), state.seats_left()) == (["o0", "o1", "o2"], 0)
    assert sum(isinstance(e, SeatsRefused) for e in history) == 7


# -- the order's side --------------------------------------------------------------------------------------

ITEMS = [OrderItem(content_id="w", quantity=2), OrderItem(content_id="guide", quantity=1)]
CREATED = OrderCreated(order_id="o1", customer_id="u1", items=ITEMS, total=25, seated=["w"])


def test_an_order_of_a_workshop_is_created_reserving_and_queues_its_request() -> None:
    place = PlaceOrder(order_id="o1", customer_id="u1", items=ITEMS, prices={"w": 10, "guide": 5}, seated=["w"])
    given(ORDER).when(place).then(CREATED, SeatsRequested(order_id="o1", content_id="w", quantity=2))


def test_the_last_held_item_makes_the_order_reserved() -> None:
    given(ORDER, CREATED).when(MarkSeatsReserved(order_id="o1", content_id="w")).then(
        OrderSeatsHeld(order_id="o1", content_id="w"), OrderReserved(order_id="o1", customer_id="u1", total=25)
    )


def test_an_order_still_reserving_cannot_be_paid() -> None:
    given(ORDER, CREATED).when(MarkOrderPaid(order_id="o1")).then()


def test_paying_a_reserved_order_queues_the_confirmation_of_its_seats() -> None:
    reserved = OrderReserved(order_id="o1", customer_id="u1", total=25)
    given(ORDER, CREATED, reserved).when(MarkOrderPaid(order_id="o1")).then(
        OrderPaid(order_id="o1", customer_id="u1", items=ITEMS), SeatsPaidFor(order_id="o1", content_id="w")
    )


def test_cancelling_while_reserving_gives_the_seats_back() -> None:
    given(ORDER, CREATED).when(CancelOrder(order_id="o1")).then(
        OrderCancelled(order_id="o1", customer_id="u1", previous_status="reserving"),
        SeatsGivenBack(order_id="o1", content_id="w"),
    )


def test_a_refused_order_records_why_and_what_it_was() -> None:
    given(ORDER, CREATED).when(RefuseOrder(order_id="o1", reason="sold out")).then(
        OrderRefused(order_id="o1", customer_id="u1", items=ITEMS, reason="sold out", previous_status="reserving"),
        SeatsGivenBack(order_id="o1", content_id="w"),
    )
    refused = OrderRefused(order_id="o1", customer_id="u1", items=ITEMS, reason="x", previous_status="reserving")
    given(ORDER, CREATED, refused).when(RefuseOrder(order_id="o1", reason="sold out")).then()
