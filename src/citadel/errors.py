"""Every error Citadel raises, backend-neutral.

```
CitadelError
├── ConfigurationError (ValueError)        the application was wired wrongly; raised at build (HTTP 500 later)
│   ├── DuplicateHandler                   a second handler for one command or query type
│   ├── BoundaryViolation                  a module reaches into another module (see ``citadel.check``)
│   ├── HandlerMismatch                    a handler listed for a message it does not take, or a misplaced message
│   ├── UnmatchedHandler                   a projector's ``handle_<name>`` method that matches no event
│   ├── UndeclaredDependency               a module uses another module's message without ``depends_on``
│   ├── MissingDecision                    an aggregate given a command it has no ``@decides`` for
│   ├── UnevolvedEvent                     an aggregate emits an event it has no ``@evolves`` for
│   └── ViewInCommandHandler               a command handler reads a view
├── UnknownMessage (LookupError)           (HTTP 500: routes exist only for what the application handles)
│   ├── UnknownCommand                     no handler registered for a command type
│   ├── UnknownQuery                       no handler registered for a query type
│   └── UnknownEventType                   an event name or class the registry does not know
├── InvalidMessage (ValueError)            a payload that does not decode into its declared type
│   └── PositionNotWritten                 a ``min_position`` beyond the highest position written (HTTP 422)
├── TamperedPayload (ValueError)           a stored, encrypted payload that does not authenticate
├── PayloadForgotten (LookupError)         an event whose subject was forgotten (its data key deleted)
├── DomainError                            a business rule refused the command (HTTP 409)
│   ├── InvalidCommand (ValueError)        the command is malformed for the domain (HTTP 422)
│   ├── NotFound (LookupError)             the entity the command or query names does not exist (HTTP 404)
│   └── UniqueViolation                    a write would break a view's unique field (HTTP 409)
├── ConcurrencyError                       optimistic concurrency: the stream moved on (HTTP 409)
├── IdempotencyConflict                    an idempotency key reused with a different payload (HTTP 422)
├── AccessDenied (PermissionError)         the actor may not touch that table or message (HTTP 403)
│   └── Unauthenticated                    no credentials, or invalid ones, where some are needed (HTTP 401)
│       └── UnverifiedMessage              a message between services whose signature does not verify
├── RateLimited                            a caller spent its request budget (HTTP 429)
├── ServiceUnavailable                     the service that owns a message is down or slow (HTTP 503)
│   └── NotCaughtUp                        read models have not reached the position asked for yet (HTTP 503)
├── LeaseLost                              another process took over a consumer's lease
└── StoreError                             the storage backend failed; the driver error is its __cause__
```

Driver errors are translated at the boundary with ``raise StoreError(...) from exc``.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "BoundaryViolation",
    "CitadelError",
    "ConcurrencyError",
    "ConfigurationError",
    "DomainError",
    "DuplicateHandler",
    "HandlerMismatch",
    "IdempotencyConflict",
    "InvalidCommand",
    "InvalidMessage",
    "LeaseLost",
    "MissingDecision",
    "NotCaughtUp",
    "NotFound",
    "PayloadForgotten",
    "PositionNotWritten",
    "RateLimited",
    "ServiceUnavailable",
    "StoreError",
    "TamperedPayload",
    "Unauthenticated",
    "UndeclaredDependency",
    "UnevolvedEvent",
    "UniqueViolation",
    "UnknownCommand",
    "UnknownEventType",
    "UnknownMessage",
    "UnknownQuery",
    "UnmatchedHandler",
    "UnverifiedMessage",
    "ViewInCommandHandler",
]


class CitadelError(Exception):
    """Base class of every error raised by Citadel."""


class ConfigurationError(CitadelError, ValueError):
    """The application is wired wrongly; the message says what to change."""


class DuplicateHandler(ConfigurationError):
    """A command or query type was given a second handler."""

    def __init__(self, message_type: type) -> None:
        self.message_type = message_type
        super().__init__(
            f"{message_type.__qualname__} already has a handler; a command or query has exactly one. "
            "Remove the second registration."
        )


class BoundaryViolation(ConfigurationError):
    """Modules break the boundary rules; ``problems`` lists each finding, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        report = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"module boundary check failed ({len(problems)} problem(s)):\n{report}")


class HandlerMismatch(ConfigurationError):
    """A handler is listed for a message type its first parameter does not accept, or a message type is listed
    under the wrong kind (a query in ``commands=``)."""


class UnmatchedHandler(ConfigurationError):
    """A projector's ``handle_<name>`` method matches no event the projector may handle."""


class UndeclaredDependency(ConfigurationError):
    """A module uses a command or query of another module it does not declare in ``depends_on``."""


class MissingDecision(ConfigurationError):
    """An aggregate was given a command it has no ``@decides`` method for (``where`` says by whom, when known)."""

    def __init__(self, aggregate: type, command_type: type, *, where: str = "") -> None:
        self.aggregate = aggregate
        self.command_type = command_type
        name = command_type.__name__
        super().__init__(
            f"{where}aggregate {aggregate.__qualname__} has no @decides method for command {name}; add one whose first "
            f"parameter is annotated `command: {name}`, or execute {name} on the decider that decides it"
        )


class UnevolvedEvent(ConfigurationError):
    """An aggregate's ``@decides`` method returns an event type no ``@evolves`` method applies."""


class ViewInCommandHandler(ConfigurationError):
    """A command handler reads a view: command handlers decide from their stream's state."""


class UnknownMessage(CitadelError, LookupError):
    """A message type or name is not registered."""


class UnknownCommand(UnknownMessage):
    """No handler is registered for the command's type."""

    def __init__(self, command_type: type) -> None:
        self.command_type = command_type
        super().__init__(
            f"no handler registered for command {command_type.__qualname__}; "
            "register one with CommandBus.register() or list it in a Module's command handlers"
        )


class UnknownQuery(UnknownMessage):
    """No handler is registered for the query's type."""

    def __init__(self, query_type: type) -> None:
        self.query_type = query_type
        super().__init__(
            f"no handler registered for query {query_type.__qualname__}; "
            "register one with QueryBus.register() or list it in a Module's query handlers"
        )


class UnknownEventType(UnknownMessage):
    """An event class or stored event name is not in the registry."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"unknown event type {what}; list the event class in its Module's `events` "
            "(or register it on the EventRegistry)"
        )


class InvalidMessage(CitadelError, ValueError):
    """A payload does not decode into its declared type.

    ``path`` is the JSON path of the offending field when known (``$.items[0].quantity``).
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class PositionNotWritten(InvalidMessage):
    """A query's ``min_position`` is beyond the highest position ever written to the log it names: no write the
    client saw can have it, so waiting for it could only time out."""


class TamperedPayload(CitadelError, ValueError):
    """A stored payload failed authentication: it was altered, or copied from another row."""


class PayloadForgotten(CitadelError, LookupError):
    """The event's subject was forgotten: its data key is deleted and its payload can never be read again."""


class DomainError(CitadelError):
    """A business rule refused a command. Raise it (or a subclass) from decide functions."""


class InvalidCommand(DomainError, ValueError):
    """The command is not acceptable for the domain (a quantity below one, an unknown product)."""


class NotFound(DomainError, LookupError):
    """The entity a command or query names does not exist."""


class UniqueViolation(DomainError):
    """A projection write would give two documents of a view the same value of a unique field."""

    def __init__(self, view: str, fields: str) -> None:
        self.view = view
        self.fields = fields
        super().__init__(f"view {view} already has a document with this {fields}")


class ConcurrencyError(CitadelError):
    """An append expected a stream version that is no longer current."""

    def __init__(self, stream_id: str, expected: int | None, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the append expected {expected}; "
            "reload the stream and decide again"
        )


class IdempotencyConflict(CitadelError):
    """An idempotency key was reused for a different command or payload."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was already used with a different command or payload; "
            "use a new key for a new request"
        )


class AccessDenied(CitadelError, PermissionError):
    """The caller may not reach the resource (another module's table, a forbidden message)."""


class Unauthenticated(AccessDenied):
    """The request carries no credentials, or invalid ones, and the message needs an identity."""


class UnverifiedMessage(Unauthenticated):
    """A message from another service is unsigned, mis-signed (an unknown key id included) or stale.

    ``reason`` is one of ``unsigned``, ``malformed``, ``unknown-key``, ``bad-signature``, ``stale``, ``future``,
    ``replayed``;
    ``key_id`` is the key id the message claims ("" if none).
    """

    reason = "unverified"
    key_id = ""

    def __init__(self, message: str, *, reason: str, key_id: str = "") -> None:
        self.reason = reason
        self.key_id = key_id[:64]
        super().__init__(message)


class RateLimited(CitadelError):
    """The caller's token bucket is empty; ``headers`` say when to retry (``Retry-After``, ``RateLimit``)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        super().__init__(f"too many requests; retry after {headers.get('Retry-After', '1')} s")


class ServiceUnavailable(CitadelError):
    """The module a message belongs to runs in another service, which did not answer in time."""


class NotCaughtUp(ServiceUnavailable):
    """A query's read models had not processed the position it asked for (``min_position``) in time."""


class LeaseLost(CitadelError):
    """A consumer's lease expired and another process holds it now; its write was rolled back."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"the lease of consumer {name!r} is held by another process")


class StoreError(CitadelError):
    """The storage backend failed. The driver's exception is chained as ``__cause__``."""
