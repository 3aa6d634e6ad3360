"""Where the modules run, as this service knows it: its own modules, those it reaches through the broker, and how
far its outbox relay and inbox have got.

A service knows which modules it runs and that the others run elsewhere, not which service runs each of them:
the broker routes by module, so the map of other services is not held here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from citadel.projection_admin import ProjectionStatus, consumer_status

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["Deployment", "InboxState", "deployment_of"]


@dataclass(frozen=True, slots=True)
class InboxState:
    """The inbox: its durable consumer on the broker, the messages it has yet to import, and those it imported
    since this process started."""

    name: str
    pending: int | None
    imported: int
    running: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class Deployment:
    """This service, its modules, and its links to the others."""

    service: str
    partial: bool
    local: list[str]
    remote: list[str]
    broker: str | None
    head: int
    relay: ProjectionStatus | None
    inbox: InboxState | None


async def deployment_of(application: Application) -> Deployment:
    """What this service knows of the deployment.

    Raises:
        CitadelError: the store cannot be read.
    """
    topology = application.topology
    store = application.store
    local = sorted(m for m in application.modules if topology.runs(m))
    remote = sorted(m for m in application.modules if not topology.runs(m))
    relay = topology.relay
    relay_status = None if relay is None else await consumer_status(relay.name, "", "relay", relay, store)
    inbox = topology.inbox
    inbox_state = None
    if inbox is not None:
        try:
            inbox_state = InboxState(inbox.durable, await inbox.pending(), inbox.imported, inbox.running, None)
        except Exception as exc:  # the broker cannot tell: the page says so instead of failing
            inbox_state = InboxState(inbox.durable, None, inbox.imported, False, f"{type(exc).__name__}: {exc}")
    broker = topology.broker
    return Deployment(
        service=topology.service,
        partial=topology.partial,
        local=local,
        remote=remote,
        broker=None if broker is None else f"{broker.url}/{broker.prefix}",
        head=await store.head_position(),
        relay=relay_status,
        inbox=inbox_state,
    )
