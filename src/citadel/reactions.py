"""Read-your-writes across reactions: which consumers a query's wait covers, and how far it follows the log.

A query on module M with ``min_position`` P reflects every reaction chain that starts at or before P and changes
M: a command whose process manager sends a command to M, and chains of them (in the shop, ``pay-invoice`` →
billing → orders' ``OrderPaid`` → content's ``GrantAccess``).

**Which consumers.** M's async projections, and the process managers that can lead to M. A process manager
leads to M when its reactions return commands of a module whose events M's projections read (M's own
included), or of a module whose events feed a process manager that leads to M. The commands a reaction returns
are read from its return annotation (once, at the first wait); a reaction without one that names its commands
may return any command, so its process manager counts. Other consumers are not waited for.

**How far.** Every command a process manager dispatches stores, with its events, the position of the event it
reacted to (``causation_position``). An event belongs to a chain that starts at or before P when its cause is
at or before P, or is itself such an event. The wait runs in rounds: the consumers above process P; then the
store finds the last chain event after what they processed (``EventStore.chain_end``: each reaction's event of
that unprocessed tail walks up its causes), and they must process it too; and again, until a round finds none.
A reaction is committed before its process manager moves past its cause, so once the consumers are past an
event, its reactions are in the log; and every process manager on a chain that leads to M leads to M itself, so
it is among them. The whole wait stays within the query's own.

**Across services** (``citadel.topology``) each service follows the chains in its own log: the service that
wrote P says it has published P only once its process managers have reacted to P and to the chains in its log
(their commands to other services are then committed there), and the asking service then waits from its own
head.
"""

from __future__ import annotations

import asyncio
import collections.abc
import types
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from citadel.errors import ConfigurationError, PositionNotWritten
from citadel.messages import Command, Message

if TYPE_CHECKING:
    from citadel.composition import Composition
    from citadel.messaging.process_manager import ProcessManager
    from citadel.store.base import EventStore

__all__ = ["check_written", "commands_returned", "consumers_leading_to", "wait_for_chains"]

_CONTAINERS = frozenset(
    {
        list,
        tuple,
        set,
        frozenset,
        collections.abc.Iterable,
        collections.abc.Iterator,
        collections.abc.Sequence,
        collections.abc.Collection,
        collections.abc.Generator,
    }
)


def commands_returned(reaction: Callable[..., Any]) -> frozenset[type[Command]] | None:
    """The command types ``reaction``'s return annotation names (``A``, ``A | None``, ``list[A | B]``...);
    None when it has none, or one that does not say which commands (``Command``, ``Any``, a string)."""
    try:
        hint = typing.get_type_hints(reaction).get("return")
    except Exception:
        return None
    return None if hint is None else _commands_in(hint)


def _commands_in(hint: Any) -> frozenset[type[Command]] | None:
    if hint is None or hint is type(None):
        return frozenset()
    if isinstance(hint, type) and issubclass(hint, Command):
        return None if hint is Command else frozenset({hint})
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is collections.abc.Generator:
        args = args[:1]  # what it yields; the rest are what it is sent and returns
    if origin in (typing.Union, types.UnionType) or origin in _CONTAINERS:
        found: set[type[Command]] = set()
        for arg in args:
            if arg is Ellipsis:
                continue
            inner = _commands_in(arg)
            if inner is None:
                return None
            found |= inner
        return frozenset(found)
    return None


def _modules_of(composition: Composition, message_types: Iterable[type[Message]]) -> frozenset[str] | None:
    """The modules that own ``message_types``; None when one is owned by none (it may come from anywhere)."""
    try:
        return frozenset(composition.owner_of(t).name for t in message_types)
    except ConfigurationError:
        return None


def _targets(composition: Composition, manager: ProcessManager) -> frozenset[str] | None:
    """The modules whose commands ``manager``'s reactions return; None: possibly any."""
    found: set[str] = set()
    for reaction in manager.reaction_functions:
        commands = commands_returned(reaction)
        modules = None if commands is None else _modules_of(composition, commands)
        if modules is None:
            return None
        found |= modules
    return frozenset(found)


def consumers_leading_to(composition: Composition) -> dict[str, frozenset[str]]:
    """By module, the names of the consumers a query on it waits for: its async projections, and the process
    managers that can lead to it, as the module docstring defines."""
    everything = frozenset(composition.modules)
    managers: list[tuple[str, frozenset[str] | None, frozenset[str]]] = []  # name, targets, modules feeding it
    for owner in composition.modules.values():
        for manager in owner.process_managers:
            feeds = _modules_of(composition, manager.event_types)
            feeds = everything if feeds is None else feeds
            managers.append((manager.consumer_name(owner.name), _targets(composition, manager), feeds))
    waited: dict[str, frozenset[str]] = {}
    for module in composition.modules:
        bindings = [b for b in composition.projections.values() if b.module == module]
        sources = _modules_of(composition, [composition.registry.named(n).cls for b in bindings for n in b.event_types])
        sinks = set(everything if sources is None else sources) | {module}
        leading: set[str] = set()
        grew = True
        while grew:  # a fixed point: each round adds the managers that lead into what is known to lead to it
            grew = False
            for name, targets, feeds in managers:
                if name not in leading and (targets is None or targets & sinks):
                    leading.add(name)
                    sinks |= feeds
                    grew = True
        own = {b.name for b in bindings if not b.inline}
        waited[module] = frozenset(own | leading)
    return waited


async def wait_for_chains(
    store: EventStore, wait_for: Callable[[int, float], Awaitable[bool]], position: int, timeout: float
) -> bool:
    """Wait until ``wait_for(p, seconds)`` holds for ``position`` and for the last event of the reaction chains
    that start at or before it, as they grow; False when ``timeout`` passes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    reached = position
    while True:
        if not await wait_for(reached, max(0.0, deadline - loop.time())):
            return False
        end = await store.chain_end(position, reached)  # the chains' events up to ``reached`` are processed
        if end <= reached:
            return True
        reached = end


async def check_written(store: EventStore, position: int) -> None:
    """Refuse a position beyond the highest one committed to ``store``'s log (whether subscribers can read it yet
    or not): no write a client saw can have it, so waiting for it could only time out.

    Raises:
        PositionNotWritten: ``position`` was never written.
    """
    last = await store.last_position()
    if position > last:
        raise PositionNotWritten(
            f"min_position {position} is beyond the highest position written to this log ({last}); pass the "
            "Citadel-Position a command answered with",
            path="$.min_position",
        )
