"""The context that travels with every dispatch: who acts, and which conversation a message belongs to."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from citadel.ids import new_id

__all__ = ["ANONYMOUS", "SYSTEM", "Actor", "DispatchContext", "is_safe_id"]

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def is_safe_id(value: str) -> bool:
    """Whether ``value``, taken from outside (a request header), may become a correlation id or an idempotency
    key: 1 to 128 characters of ``A-Z a-z 0-9 . _ : -``. Both are stored with every event a dispatch causes, so
    anything longer or stranger could swell the store or forge a line of a log that shows them."""
    return _SAFE_ID.fullmatch(value) is not None


class Actor(msgspec.Struct, frozen=True, gc=False):
    """Who issues a message: a subject id and its roles."""

    subject: str
    roles: frozenset[str] = frozenset()

    def has_role(self, role: str) -> bool:
        """Return whether the actor holds ``role``."""
        return role in self.roles


ANONYMOUS = Actor("anonymous")
SYSTEM = Actor("system", frozenset({"system"}))


class DispatchContext(msgspec.Struct, kw_only=True, gc=False):
    """Metadata of one dispatch, recorded on every event it causes.

    ``message_id`` identifies this dispatch; ``correlation_id`` is shared by everything one original request
    causes; ``causation_id`` is the id of the message (command or event) that caused this one. Treat it as
    a value: derive changed copies with ``replace()`` or ``child()``.
    """

    actor: Actor = ANONYMOUS
    message_id: str = msgspec.field(default_factory=new_id)
    correlation_id: str = ""
    causation_id: str | None = None
    idempotency_key: str | None = None
    causation_position: int = 0
    """The position in this log of the event a process manager reacted to with this command (0: none), stored
    with the events the command writes, so that read-your-writes can follow reaction chains
    (``citadel.reactions``). Not carried to other services: a position means nothing in another log."""
    min_position: int = 0
    """For a query: the log position its module's read models must have processed first."""
    position_of: str = ""
    """The module whose log ``min_position`` is in: empty for this application's own store; in a partial
    topology (each service its own log), the module whose command returned the position."""
    wait: float = 0.0
    """For a query with ``min_position``: how long it may wait for that, in seconds."""

    def __post_init__(self) -> None:
        if not self.correlation_id:
            self.correlation_id = self.message_id

    def replace(self, **changes: Any) -> DispatchContext:
        """Return a copy with ``changes`` applied (for middleware that sets the actor, say)."""
        return msgspec.structs.replace(self, **changes)

    def child(self, *, idempotency_key: str | None = None) -> DispatchContext:
        """Return the context of a message caused by this one: same actor and correlation, new id."""
        return msgspec.structs.replace(
            self,
            message_id=new_id(),
            causation_id=self.message_id,
            causation_position=0,
            idempotency_key=idempotency_key,
        )
