"""An item's seats: held for unpaid orders, sold to paid ones, never more than the item has. Pure.

The seats live in the item's own stream (``item-{content_id}``), next to its publication, so every decision
about them sees every earlier one: optimistic concurrency makes two decisions on one version impossible.

A refusal is an event (``SeatsRefused``), not an exception: the order that asked learns the answer from the
log like any other, and nothing is left for a process manager to retry or park as a dead letter.

Holds expire lazily: a reservation first releases the holds whose time was up at its ``at`` (the command
carries the time; ``decide`` reads no clock). Until a later reservation needs them, an expired hold stands,
and paying for it still confirms it.
"""

from __future__ import annotations

import msgspec

from citadel import Aggregate, Event, InvalidCommand, NotFound, decides, evolves
from examples.shop.content.contract import (
    ConfirmSeats,
    ReleaseSeats,
    ReserveSeats,
    SeatsConfirmed,
    SeatsRefused,
    SeatsReleased,
    SeatsReserved,
)
from examples.shop.content.domain import ContentPublished

SOLD_OUT = "sold out"


class Hold(msgspec.Struct, kw_only=True):
    """Seats held for one unpaid order, until ``expires_at`` (seconds since the epoch)."""

    quantity: int
    expires_at: float


class Seats(Aggregate):
    capacity: int | None = None
    """None: the item is unknown, or unlimited."""
    hold_seconds: int = 0
    held: dict[str, Hold] = {}
    sold: dict[str, int] = {}
    answered: set[str] = set()
    """Every order ever reserved or refused here."""

    def seats_left(self) -> int:
        """Return the seats neither held nor sold."""
        taken = sum(h.quantity for h in self.held.values()) + sum(self.sold.values())
        return (self.capacity or 0) - taken

    @decides
    def reserve(self, command: ReserveSeats) -> list[Event]:
        if self.capacity is None:
            raise NotFound(f"item {command.content_id} has no seats to reserve")
        if command.quantity < 1:
            raise InvalidCommand(f"reserve at least one seat, got {command.quantity}")
        order_id = command.order_id
        if order_id in self.answered:
            return []  # answered already: a redelivered request changes nothing
        events: list[Event] = []
        left = self.seats_left()
        for holder, hold in self.held.items():
            if hold.expires_at <= command.at:
                left += hold.quantity
                events.append(
                    SeatsReleased(
                        content_id=command.content_id,
                        order_id=holder,
                        quantity=hold.quantity,
                        seats_left=left,
                        expired=True,
                    )
                )
        if command.quantity > left:
            refused = SeatsRefused(
                content_id=command.content_id,
                order_id=order_id,
                quantity=command.quantity,
                seats_left=left,
                reason=SOLD_OUT,
            )
            return [*events, refused]
        reserved = SeatsReserved(
            content_id=command.content_id,
            order_id=order_id,
            quantity=command.quantity,
            seats_left=left - command.quantity,
            expires_at=command.at + self.hold_seconds,
        )
        return [*events, reserved]

    @decides
    def confirm(self, command: ConfirmSeats) -> list[Event]:
        hold = self.held.get(command.order_id)
        if hold is None:
            return []  # sold already, or released: the release told the order
        return [SeatsConfirmed(content_id=command.content_id, order_id=command.order_id, quantity=hold.quantity)]

    @decides
    def release(self, command: ReleaseSeats) -> list[Event]:
        hold = self.held.get(command.order_id)
        quantity = hold.quantity if hold is not None else self.sold.get(command.order_id, 0)
        if not quantity:
            return []
        return [
            SeatsReleased(
                content_id=command.content_id,
                order_id=command.order_id,
                quantity=quantity,
                seats_left=self.seats_left() + quantity,
                expired=False,
            )
        ]

    @evolves
    def was_published(self, event: ContentPublished) -> None:
        self.capacity, self.hold_seconds = event.seats, event.hold_seconds

    @evolves
    def was_reserved(self, event: SeatsReserved) -> None:
        self.held[event.order_id] = Hold(quantity=event.quantity, expires_at=event.expires_at)
        self.answered.add(event.order_id)

    @evolves
    def was_refused(self, event: SeatsRefused) -> None:
        self.answered.add(event.order_id)

    @evolves
    def was_confirmed(self, event: SeatsConfirmed) -> None:
        del self.held[event.order_id]
        self.sold[event.order_id] = event.quantity

    @evolves
    def was_released(self, event: SeatsReleased) -> None:
        self.held.pop(event.order_id, None)
        self.sold.pop(event.order_id, None)


SEATS = Seats.decider()
