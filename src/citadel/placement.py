"""Which modules run in this process, and how the messages of the others reach the service that runs them.

A ``Placement`` is the deployment's list of modules checked against the application's: which are *local*
here, whether the process runs only some of them (a *partial* placement, one service among several), and how
positions read to clients. ``Routes`` is the one question the application asks when it registers a message's
handler on its buses: is there a way to another service for it (a forwarder), or does it run here? The answer
is fixed at registration; nothing swaps handlers behind the buses' back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from citadel.errors import ConfigurationError, InvalidMessage

if TYPE_CHECKING:
    from citadel.bus import AsyncHandler, Handler
    from citadel.messages import Message
    from citadel.module import Module

__all__ = ["HERE", "MAX_POSITION", "Placement", "Routes", "parse_position"]

MAX_POSITION = (1 << 63) - 1
"""The largest log position: stores keep positions as signed 64-bit integers."""


class Routes(Protocol):
    """How a message of a module that runs in another service reaches it."""

    def remote(self, module: Module, message_type: type[Message], handler: Handler) -> AsyncHandler | None:
        """The handler that forwards ``module``'s ``message_type`` to the service that runs it; None when it is
        handled here (by ``handler``, in its module's context)."""


class _Here:
    """Every message is handled here."""

    def remote(self, module: Module, message_type: type[Message], handler: Handler) -> AsyncHandler | None:
        return None


HERE: Routes = _Here()
"""The routes of a process that runs every module."""


class Placement:
    """The modules that run in this process, out of the application's ``modules``.

    Raises:
        ConfigurationError: ``local`` names a module the application does not have, or names only some modules
            and there is no broker to reach the others.
    """

    def __init__(self, modules: Collection[str], local: Collection[str] | None = None, *, broker: bool) -> None:
        names = frozenset(modules)
        unknown = set(local or ()) - names
        if unknown:
            raise ConfigurationError(
                f"unknown module(s) {', '.join(sorted(unknown))}; the application has {', '.join(modules)}"
            )
        self.local: frozenset[str] = frozenset(local) if local else names
        """The names of the modules that run here."""
        self.partial = self.local != names
        """Whether other services run the other modules."""
        if self.partial and not broker:
            raise ConfigurationError(
                "running only some modules needs a broker to reach the others: pass --broker nats://..."
            )

    def runs(self, module: str) -> bool:
        """Whether this process runs the module named ``module``."""
        return not self.partial or module in self.local

    @property
    def service(self) -> str:
        """This service's name: its local modules, joined."""
        return "+".join(sorted(self.local))

    def position_token(self, module: str, position: int) -> str:
        """A position as clients see it: the number, or ``module:number`` in a partial placement (each service
        has its own log; see ``citadel.topology``)."""
        return f"{module}:{position}" if self.partial else str(position)


def parse_position(token: str, modules: Sequence[str]) -> tuple[str, int]:
    """``"57"`` → ``("", 57)``; ``"orders:57"`` → ``("orders", 57)``.

    Raises:
        InvalidMessage: the token is neither a non-negative number nor ``module:number`` of a known module, or
            its number is beyond ``MAX_POSITION``.
    """
    module, _, number = token.rpartition(":")
    if not (number.isascii() and number.isdigit()) or (module and module not in modules):
        raise InvalidMessage(
            "Expected a non-negative integer, or module:integer as a command's Citadel-Position - at `$.min_position`"
        )
    if len(number) > 19:  # counted before int(), which is slow on thousands of digits and refuses more
        number = number.lstrip("0") or "0"
    if len(number) > 19 or int(number) > MAX_POSITION:
        raise InvalidMessage(f"Expected a position of at most {MAX_POSITION} - at `$.min_position`")
    return module, int(number)
