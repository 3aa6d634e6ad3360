"""The authorization middleware an ``Application`` puts in front of its command and query buses when it has a
policy: ``citadel.security.rbac`` applied to the application's modules, their owners and its topology.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from citadel.bus import CallNext, Middleware
from citadel.composition import MessageOwnership
from citadel.context import SYSTEM, DispatchContext
from citadel.errors import ConfigurationError
from citadel.handling import QueryContext, reads_shared
from citadel.messages import Message, Query
from citadel.security.rbac import Policy, authorization

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["authorization_middleware"]


def authorization_middleware(app: Application, ownership: MessageOwnership, policy: Policy) -> Middleware:
    """Return the middleware that lets a message through only when ``policy`` allows its actor to send it.

    Messages of modules that run in another service pass here: that service checks them, with its own data.

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
        result: str | None = await find(message, QueryContext(app, module, context.replace(actor=SYSTEM)))
        return result

    guard = authorization(policy, ownership.permission_of, target_owner)

    async def authorize(message: Message, context: DispatchContext, call_next: CallNext) -> Any:
        if type(message) in app.topology.remote:  # the service that runs it checks, with its own data
            return await call_next(message, context)
        if isinstance(message, Query):  # its owner check and its handler read the same row once
            with reads_shared():
                return await guard(message, context, call_next)
        return await guard(message, context, call_next)

    return authorize
