"""The authorization middleware an ``Application`` puts in front of its command and query buses when it has a
policy: ``citadel.security.rbac`` applied to the application's modules and their owners.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from citadel.bus import CallNext, Middleware
from citadel.context import SYSTEM, DispatchContext
from citadel.errors import ConfigurationError
from citadel.handling import QueryContext, Runtime, reads_shared
from citadel.messages import Message, Query
from citadel.ownership import MessageOwnership
from citadel.security.rbac import Policy, authorization

__all__ = ["authorization_middleware"]


def authorization_middleware(
    runtime: Runtime, ownership: MessageOwnership, policy: Policy, forwarded: Collection[type[Message]]
) -> Middleware:
    """Return the middleware that lets a message through only when ``policy`` allows its actor to send it.

    Messages of the types in ``forwarded`` (the application keeps it up to date as it routes them to the service
    that runs their module) pass here: that service checks them, with its
    own data. Owner lookups read views through ``runtime``.

    Raises:
        ConfigurationError: the policy grants a permission on what an actor owns, for a message type whose
            module declares no ``owners`` for it.
    """
    for grant in policy.resolve(ownership.permission_of):
        if not grant.own:
            continue
        covered = [t for t in ownership if grant.matches(ownership.permission_of(t))]
        for message_type in covered:
            if message_type not in ownership.owner_of(message_type).owners:
                raise ConfigurationError(
                    f"the policy grants {grant.permission} to {grant.role!r} on what it owns, but module "
                    f"{ownership.owner_of(message_type).name!r} declares no owners[{message_type.__name__}]"
                )

    async def target_owner(message: Message, context: DispatchContext) -> str | None:
        module = ownership.owner_of(type(message))
        find = module.owners.get(type(message))
        if find is None:
            return None
        # The lookup only reads the module's views, as the system: no new message, so no new id.
        result: str | None = await find(message, QueryContext(runtime, module, context.replace(actor=SYSTEM)))
        return result

    guard = authorization(policy, ownership.permission_of, target_owner)

    async def authorize(message: Message, context: DispatchContext, call_next: CallNext) -> Any:
        if type(message) in forwarded:  # the service that runs it checks, with its own data
            return await call_next(message, context)
        if isinstance(message, Query):  # its owner check and its handler read the same row once
            with reads_shared():
                return await guard(message, context, call_next)
        return await guard(message, context, call_next)

    return authorize
