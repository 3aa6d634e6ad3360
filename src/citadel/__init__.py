"""Citadel: modular monoliths with event sourcing and CQRS.

The public API is what this module exports; everything else may change between versions.
"""

from __future__ import annotations

from citadel.app import Application, Outcome, ProjectionStatus
from citadel.boundaries import check
from citadel.bus import CallNext, CommandBus, Middleware, QueryBus
from citadel.config import Settings, load_settings
from citadel.context import ANONYMOUS, SYSTEM, Actor, DispatchContext
from citadel.deployment import Deployment, WorkerSlot
from citadel.domain import Aggregate, Decider, decides, evolves
from citadel.errors import (
    AccessDenied,
    BoundaryViolation,
    CitadelError,
    ConcurrencyError,
    ConfigurationError,
    DomainError,
    DuplicateHandler,
    IdempotencyConflict,
    InvalidCommand,
    InvalidMessage,
    LeaseLost,
    NotCaughtUp,
    NotFound,
    PayloadForgotten,
    PositionNotWritten,
    RateLimited,
    StoreError,
    TamperedPayload,
    Unauthenticated,
    UniqueViolation,
    UnknownCommand,
    UnknownEventType,
    UnknownMessage,
    UnknownQuery,
)
from citadel.handling import CommandContext, Loaded, QueryContext
from citadel.ids import new_id
from citadel.messages import Command, Event, EventRegistry, Message, Query, SubjectForgotten, Upcaster
from citadel.messaging import ProcessManager, RetryPolicy
from citadel.module import Module
from citadel.projection import ProjectionContext, Projector, handles
from citadel.setup import configure
from citadel.store import NO_STREAM, EventStore, Metadata, RecordedEvent, open_store
from citadel.views import View, ViewReader, ViewWriter

__all__ = [
    "ANONYMOUS",
    "NO_STREAM",
    "SYSTEM",
    "AccessDenied",
    "Actor",
    "Aggregate",
    "Application",
    "BoundaryViolation",
    "CallNext",
    "CitadelError",
    "Command",
    "CommandBus",
    "CommandContext",
    "ConcurrencyError",
    "ConfigurationError",
    "Decider",
    "Deployment",
    "DispatchContext",
    "DomainError",
    "DuplicateHandler",
    "Event",
    "EventRegistry",
    "EventStore",
    "IdempotencyConflict",
    "InvalidCommand",
    "InvalidMessage",
    "LeaseLost",
    "Loaded",
    "Message",
    "Metadata",
    "Middleware",
    "Module",
    "NotCaughtUp",
    "NotFound",
    "Outcome",
    "PayloadForgotten",
    "PositionNotWritten",
    "ProcessManager",
    "ProjectionContext",
    "ProjectionStatus",
    "Projector",
    "Query",
    "QueryBus",
    "QueryContext",
    "RateLimited",
    "RecordedEvent",
    "RetryPolicy",
    "Settings",
    "StoreError",
    "SubjectForgotten",
    "TamperedPayload",
    "Unauthenticated",
    "UniqueViolation",
    "UnknownCommand",
    "UnknownEventType",
    "UnknownMessage",
    "UnknownQuery",
    "Upcaster",
    "View",
    "ViewReader",
    "ViewWriter",
    "WorkerSlot",
    "check",
    "configure",
    "decides",
    "evolves",
    "handles",
    "load_settings",
    "new_id",
    "open_store",
]
