"""The broker between services, as the parts built on it see it: the inbox, the outbox relay, key sharing and
forgetting.

They name this port, never ``NatsBroker`` itself, so that imports go one way: ``citadel.messaging.nats``
implements it (and re-exports ``Inbox`` and ``OutboxRelay``), and these parts never import the broker's module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from citadel.messaging import wire
from citadel.messaging.signing import ServiceKeys

if TYPE_CHECKING:
    from citadel.store.base import RecordedEvent

__all__ = ["Broker", "Give", "Outgoing"]

Outgoing = tuple[str, str, bytes, dict[str, str]]
"""A message to sign and publish to JetStream: kind, subject, body, headers."""
Give = Callable[[bytes, wire.Verified], Awaitable[tuple[bytes, dict[str, str]]]]
"""What answers a question: its body and verified headers in, the answer's body and headers out."""


class Broker(Protocol):
    """A connection to the services around this one, every message signed and verified (``NatsBroker``).

    ``prefix`` starts every subject of the application, ``stream`` names its JetStream events stream, ``js`` is the
    JetStream context once connected, and ``keys`` are the service keys (None: the broker cannot sign).
    """

    prefix: str
    stream: str
    keys: ServiceKeys | None
    js: Any

    @property
    def server_version(self) -> tuple[int, int]:
        """The connected server's version, (major, minor)."""
        ...

    def event_subject(self, type_name: str) -> str:
        """The subject that carries the events of the stored type ``type_name``."""
        ...

    def verified(self, kind: str, subject: str, body: bytes, headers: dict[str, str]) -> wire.Verified:
        """Verify a message of ``kind`` received on ``subject``; return its headers.

        Raises:
            UnverifiedMessage: it does not verify.
        """
        ...

    def event_message(self, r: RecordedEvent, sealed: bytes | None = None) -> Outgoing:
        """The message that carries a recorded event: its payload, or ``sealed``."""
        ...

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish messages to JetStream, each signed, in order, and wait until the broker has stored every one."""
        ...

    async def ask(
        self, kind: str, subject: str, body: bytes, wait: float = 0.0
    ) -> tuple[bytes, wire.Verified, dict[str, str]] | None:
        """Send a signed question; return the answer's body, its verified headers and the question's signed
        headers, or None when no service answers in time.

        Raises:
            UnverifiedMessage: the answer does not verify.
        """
        ...

    async def answer(self, kind: str, subject: str, module: str, give: Give) -> None:
        """Answer the questions of ``kind`` on ``subject``, in ``module``'s queue group, with what ``give`` returns."""
        ...
