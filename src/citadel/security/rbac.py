"""Role-based access control, enforced at the bus (so HTTP, the CLI, process managers and broker messages
all pass the same check).

A permission is a message's stable name (``orders.CreateOrder``), or the ``permission=`` it declares; a policy
grants permissions to roles, by name or pattern (``orders.*``, ``*``)::

    policy = (
        Policy()
        .allow("anonymous", RegisterUser, GetItem)
        .allow("customer", CreateOrder, PayInvoice, GetOrder, own=True)
        .allow("editor", PublishContent)
    )

``own=True`` holds only when the actor is the owner of the message's target, as the owning module answers
it (``Module(owners={PayInvoice: invoice_owner})``): ownership rules live next to the permission, in the module
that knows its data. It fails closed: when the owner cannot be found (no such target, or a read model that has
not caught up with it yet), a query is refused as not found and a command as forbidden, so a lagging view never
lets a command through unchecked. ``admin`` may do everything; the framework's own ``system`` actor (process managers)
too. Every actor also has what ``anonymous`` has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Self

import msgspec

from citadel.bus import CallNext
from citadel.context import Actor, DispatchContext
from citadel.errors import AccessDenied, ConfigurationError, NotFound, Unauthenticated
from citadel.messages import Message, Query

__all__ = ["Grant", "Owner", "Policy", "Reach", "authorization"]

Owner = Callable[[Any, Any], Awaitable[str | None]]
"""``async (message, ctx: QueryContext) -> subject`` of the owner of the message's target, None when it is not
known (then an ``own=True`` grant refuses the message)."""


Reach = Literal["all", "own", "none"]
"""How far a set of roles may use a permission: on anything, only on what the actor owns, or not at all."""


class Grant(msgspec.Struct, frozen=True):
    """One permission of one role; with ``own``, only on what the actor owns."""

    role: str
    permission: str
    own: bool = False

    def matches(self, permission: str) -> bool:
        """Whether this grant covers ``permission`` (exactly, or by a trailing ``*``)."""
        if self.permission.endswith("*"):
            return permission.startswith(self.permission[:-1])
        return permission == self.permission


class Policy:
    """Which roles may send which messages. Build it with ``allow``; an ``Application`` enforces it."""

    def __init__(self, *, superusers: Sequence[str] = ("admin",)) -> None:
        self.superusers = frozenset(superusers) | {"system"}
        self._allowed: list[tuple[str, str | type[Message], bool]] = []
        self.grants: list[Grant] = []
        self._answers: dict[tuple[frozenset[str], str], Reach] = {}

    def allow(self, role: str, *permissions: str | type[Message], own: bool = False) -> Self:
        """Grant ``permissions`` (message types, names or patterns) to ``role``; return the policy."""
        if not permissions:
            raise ConfigurationError(f"allow({role!r}) needs at least one message type or permission")
        self._allowed.extend((role, permission, own) for permission in permissions)
        return self

    def resolve(self, permission_of: Callable[[type[Message]], str]) -> list[Grant]:
        """Turn message types into their permission names (the application knows them); keep the grants."""
        self.grants = [
            Grant(role, p if isinstance(p, str) else permission_of(p), own) for role, p, own in self._allowed
        ]
        self._answers.clear()
        return self.grants

    def grants_for(self, roles: frozenset[str], permission: str) -> list[Grant]:
        """The grants of ``roles`` (plus ``anonymous``) that cover ``permission``."""
        held = {*roles, "anonymous"}
        return [g for g in self.grants if g.role in held and g.matches(permission)]

    def reach(self, roles: frozenset[str], permission: str) -> Reach:
        """How far ``roles`` (plus ``anonymous``) may use ``permission``: ``"all"``, ``"own"`` (only on what the
        actor owns) or ``"none"``. Remembered: few role sets and permissions meet, and every request asks."""
        key = (roles, permission)
        found = self._answers.get(key)
        if found is None:
            grants = self.grants_for(roles, permission)
            found = "none" if not grants else "own" if all(g.own for g in grants) else "all"
            if len(self._answers) < 10_000:
                self._answers[key] = found
        return found

    def precheck(self, actor: Actor, permission: str) -> Reach:
        """Check what can be checked of ``actor`` using ``permission`` without reading any data (its roles), so
        that a caller who may not use it at all is refused before any work is done for it (a query's wait for
        ``min_position``, say). Return ``"all"``, or ``"own"`` when the owner check is still to come.

        Raises:
            Unauthenticated: an anonymous actor needs an identity for ``permission``.
            AccessDenied: none of the actor's roles grants ``permission``.
        """
        if not actor.roles.isdisjoint(self.superusers):
            return "all"
        reach = self.reach(actor.roles, permission)
        if reach == "all":
            return reach
        if _anonymous(actor):  # nobody owns anything anonymously
            raise Unauthenticated(f"{permission} needs an identity: send a bearer token")
        if reach == "none":
            raise AccessDenied(f"{actor.subject} may not {permission}: none of its roles grants it")
        return reach


def authorization(
    policy: Policy,
    permission_of: Callable[[type[Message]], str],
    owner_of: Callable[[Message, DispatchContext], Awaitable[str | None]],
) -> Callable[[Message, DispatchContext, CallNext], Awaitable[Any]]:
    """Return the bus middleware that enforces ``policy``.

    It raises ``Unauthenticated`` when an anonymous actor needs an identity, and ``AccessDenied`` when an
    identified actor lacks the permission or does not own the target; a target whose owner is unknown is
    ``NotFound`` for a query and ``AccessDenied`` for a command.
    """
    permissions: dict[type[Message], str] = {}  # a message type's permission never changes

    async def authorize(message: Message, context: DispatchContext, call_next: CallNext) -> Any:
        actor = context.actor
        if not actor.roles.isdisjoint(policy.superusers):
            return await call_next(message, context)
        message_type = type(message)
        permission = permissions.get(message_type)
        if permission is None:
            permission = permissions[message_type] = permission_of(message_type)
        if policy.precheck(actor, permission) == "all":
            return await call_next(message, context)
        owner = await owner_of(message, context)
        if owner is None:  # fail closed: a target whose owner is unknown (absent, or a view not there yet)
            if isinstance(message, Query):
                raise NotFound(f"nothing that {actor.subject} may {permission} was found")
            raise AccessDenied(f"{actor.subject} may only {permission} on what it owns, and its owner is unknown")
        if owner != actor.subject:
            raise AccessDenied(f"{actor.subject} may only {permission} on what it owns")
        return await call_next(message, context)

    return authorize


def _anonymous(actor: Actor) -> bool:
    return actor.subject == "anonymous"
