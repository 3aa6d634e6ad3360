"""How orders reserve seats: one queue per item, and a process manager that works through it in order.

Seat requests go to the item's ``seating-{content_id}`` stream, appended without an expected version, so
orders placed at once never conflict there. A process manager handles one stream's events in order: it sends
content the requests of one item one after another, and content's seats stream (the one that decides) sees no
concurrent writers. Were the requests sent straight from each order's own events, fifty orders of one
workshop would race for one stream, most would exhaust their retries, and their requests would end as dead
letters.

Content's answers come back as events: ``SeatsReserved`` moves the order on, ``SeatsRefused`` and an expired
hold's ``SeatsReleased`` become ``RefuseOrder``, the compensation.
"""

from __future__ import annotations

from citadel import Command, CommandContext, Event, ProcessManager, RecordedEvent
from examples.shop.content.contract import (
    ConfirmSeats,
    ReleaseSeats,
    ReserveSeats,
    SeatsRefused,
    SeatsReleased,
    SeatsReserved,
)
from examples.shop.orders.domain import (
    ORDER,
    MarkSeatsReserved,
    RefuseOrder,
    SeatRequest,
    SeatsGivenBack,
    SeatsPaidFor,
    SeatsRequested,
)

__all__ = ["HOLD_EXPIRED", "decide_order", "seating"]

HOLD_EXPIRED = "hold expired"


async def decide_order(ctx: CommandContext, order_id: str, command: Command, *, new: bool = False) -> list[Event]:
    """Decide ``command`` on the order; stage its events on the order's stream and its seat requests on their
    items' queues. Return the order's events.

    Raises:
        DomainError: the order refused the command.
    """
    stream = f"order-{order_id}"
    loaded = await ctx.load(ORDER, stream, new=new)
    events = list(ORDER.decide(command, loaded.state))
    own = [e for e in events if not isinstance(e, SeatRequest)]
    if own:
        ctx.append(stream, own, loaded.version)
    for request in events:
        if isinstance(request, SeatRequest):
            ctx.append(f"seating-{request.content_id}", [request])  # any version: a queue, never a conflict
    return own


seating = ProcessManager("orders.seating")


@seating.on(SeatsRequested)
def reserve(event: SeatsRequested, record: RecordedEvent) -> ReserveSeats:
    # the time the order asked, from the log: a replay sends the same command
    return ReserveSeats(
        content_id=event.content_id, order_id=event.order_id, quantity=event.quantity, at=record.recorded_at
    )


@seating.on(SeatsPaidFor)
def confirm(event: SeatsPaidFor) -> ConfirmSeats:
    return ConfirmSeats(content_id=event.content_id, order_id=event.order_id)


@seating.on(SeatsGivenBack)
def release(event: SeatsGivenBack) -> ReleaseSeats:
    return ReleaseSeats(content_id=event.content_id, order_id=event.order_id)


@seating.on(SeatsReserved)
def proceed(event: SeatsReserved) -> MarkSeatsReserved:
    return MarkSeatsReserved(order_id=event.order_id, content_id=event.content_id)


@seating.on(SeatsRefused)
def refuse(event: SeatsRefused) -> RefuseOrder:
    return RefuseOrder(order_id=event.order_id, reason=event.reason)


@seating.on(SeatsReleased)
def refuse_expired(event: SeatsReleased) -> RefuseOrder | None:
    return RefuseOrder(order_id=event.order_id, reason=HOLD_EXPIRED) if event.expired else None
