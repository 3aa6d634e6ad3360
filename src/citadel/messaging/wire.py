"""Messages on the wire: how a command, a query or their answer travels between services.

A request is the message's JSON and headers naming its type and its dispatch context (actor, correlation,
causation, idempotency key, and for queries the position to wait for). An answer is either the handler's
result as JSON with the position it wrote, or an error: its class name and message, turned back into the same
exception on the caller's side, so a remote module fails exactly as a local one would.

The actor travels as data: services must trust each other (a private broker with TLS and credentials).
"""

from __future__ import annotations

from collections.abc import Mapping

from citadel import errors
from citadel.context import Actor, DispatchContext

__all__ = ["context_from", "error_from", "error_headers", "headers_of"]

_ERRORS: dict[str, type[Exception]] = {
    name: value
    for name in errors.__all__
    if isinstance(value := getattr(errors, name), type) and issubclass(value, Exception)
}

TYPE = "Citadel-Type"
ACTOR = "Citadel-Actor"
ROLES = "Citadel-Roles"
CORRELATION = "Citadel-Correlation"
CAUSATION = "Citadel-Causation"
MESSAGE_ID = "Citadel-Message-Id"
IDEMPOTENCY = "Citadel-Idempotency-Key"
MIN_POSITION = "Citadel-Min-Position"
POSITION_OF = "Citadel-Position-Of"
WAIT = "Citadel-Wait"
POSITION = "Citadel-Position"
REPLAYED = "Citadel-Replayed"
ERROR = "Citadel-Error"


def headers_of(name: str, context: DispatchContext) -> dict[str, str]:
    """The headers of a request for message ``name`` dispatched in ``context``."""
    headers = {
        TYPE: name,
        ACTOR: context.actor.subject,
        ROLES: ",".join(sorted(context.actor.roles)),
        CORRELATION: context.correlation_id,
        MESSAGE_ID: context.message_id,
    }
    if context.causation_id:
        headers[CAUSATION] = context.causation_id
    if context.idempotency_key:
        headers[IDEMPOTENCY] = context.idempotency_key
    if context.min_position:
        headers[MIN_POSITION] = str(context.min_position)
        headers[POSITION_OF] = context.position_of
        headers[WAIT] = str(context.wait)
    return headers


def context_from(headers: Mapping[str, str]) -> DispatchContext:
    """The dispatch context a request carries."""
    roles = frozenset(r for r in headers.get(ROLES, "").split(",") if r)
    return DispatchContext(
        actor=Actor(headers.get(ACTOR, "anonymous"), roles),
        message_id=headers.get(MESSAGE_ID) or DispatchContext().message_id,
        correlation_id=headers.get(CORRELATION, ""),
        causation_id=headers.get(CAUSATION),
        idempotency_key=headers.get(IDEMPOTENCY),
        min_position=int(headers.get(MIN_POSITION, 0)),
        position_of=headers.get(POSITION_OF, ""),
        wait=float(headers.get(WAIT, 0)),
    )


def error_headers(exc: BaseException) -> dict[str, str]:
    """The headers of an answer that reports ``exc`` (its body is the message)."""
    name = type(exc).__name__
    return {ERROR: name if name in _ERRORS else "CitadelError"}


def error_from(name: str, message: str) -> Exception:
    """Rebuild the exception an answer reports (same class, same message)."""
    cls = _ERRORS.get(name, errors.CitadelError)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error
