"""Which module owns each message type, and which modules may use it: checked when an ``Application`` is built
(no I/O)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from citadel.errors import AccessDenied, ConfigurationError
from citadel.messages import EventRegistry, Message
from citadel.module import Module

__all__ = ["MessageOwnership"]


class MessageOwnership:
    """Which module owns each message type, and which modules may use it.

    Built from the application's modules: records the module of each command, query and event type, and
    registers the events (under their stable names) and the modules' upcasters in ``registry``.

    Raises:
        ConfigurationError: two modules declare the same message type.
    """

    def __init__(self, modules: Mapping[str, Module], registry: EventRegistry) -> None:
        self._owner: dict[type[Message], Module] = {}
        for module in modules.values():
            for message_type in (*module.commands, *module.queries, *module.events):
                other = self._owner.get(message_type)
                if other is not None and other is not module:
                    raise ConfigurationError(
                        f"{message_type.__name__} is declared by modules {other.name!r} and {module.name!r}; "
                        "a message type belongs to one module (the other imports it from its contract)"
                    )
                self._owner[message_type] = module
            for event_type in module.events:
                registry.register(event_type, name=module.message_name(event_type))
        for module in modules.values():
            for upcaster in module.upcasters:
                registry.add_upcaster(upcaster)

    def __iter__(self) -> Iterator[type[Message]]:
        """Every declared message type, module by module."""
        return iter(self._owner)

    def owner_of(self, message_type: type[Message]) -> Module:
        """Return the module a message type belongs to.

        Raises:
            ConfigurationError: no module declares it.
        """
        try:
            return self._owner[message_type]
        except KeyError:
            raise ConfigurationError(f"{message_type.__name__} is not declared by any module") from None

    def permission_of(self, message_type: type[Message]) -> str:
        """The permission a message type needs: its ``permission=``, else its stable name."""
        declared = message_type.__message_permission__
        return declared if declared else self.owner_of(message_type).message_name(message_type)

    def may_use(self, module: Module, message_type: type[Message]) -> bool:
        """Whether ``module`` may use ``message_type`` (its own, or a dependency's contract message)."""
        owner = self._owner.get(message_type)
        if owner is None:
            return False
        return owner is module or (owner.name in module.depends_on and owner.is_public(message_type))

    def check_access(self, module: Module, message_type: type[Message], *, what: str | None = None) -> None:
        """Raise ``AccessDenied`` unless ``module`` may use ``message_type``.

        A module may use its own messages, and the contract messages of the modules it depends on.
        """
        owner = self.owner_of(message_type)
        if owner is module:
            return
        who = what or f"module {module.name}"
        if owner.name not in module.depends_on:
            raise AccessDenied(
                f"{who} uses {message_type.__name__} of module {owner.name!r} but module {module.name!r} does "
                f"not declare depends_on=[{owner.name!r}]"
            )
        if not owner.is_public(message_type):
            raise AccessDenied(
                f"{who} uses {message_type.__name__}, which is internal to module {owner.name!r}; "
                "only its contract's messages are public"
            )
