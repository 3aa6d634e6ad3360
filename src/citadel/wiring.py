"""Wiring checks run when an ``Application`` is built: mistakes that would otherwise surface at run time, as an
``AttributeError``, an ``UnknownCommand`` or a 403, are refused at start-up with a message that names the class,
the function and the fix.

Checked where the code shows it: the first parameter of each command and query handler, process-manager
reaction, ``on()`` projection handler and ``@handles`` projector method accepts the message it is registered
for; the commands a reaction returns (its return annotation) belong to its module or to a declared dependency's
contract; a command handler neither reads a view nor executes a command on an aggregate without a ``@decides``
for it (read from its source). A module whose commands and queries are in no contract is served by no HTTP
route: that is logged as a warning, since a module may be internal on purpose.
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from citadel.bus import parameter_mismatch
from citadel.domain import Decider, annotated_classes
from citadel.errors import (
    BoundaryViolation,
    ConfigurationError,
    HandlerMismatch,
    MissingDecision,
    UndeclaredDependency,
    ViewInCommandHandler,
)
from citadel.handling import view_in_command_message
from citadel.messages import Command
from citadel.sources import names_seen_by, resolve

if TYPE_CHECKING:
    from citadel.module import Module
    from citadel.ownership import MessageOwnership

__all__ = ["check_wiring"]

log = logging.getLogger("citadel")


def check_wiring(modules: Mapping[str, Module], ownership: MessageOwnership) -> None:
    """Check every module's handlers against the messages they are registered for; warn of unexposed modules.

    Raises:
        HandlerMismatch: a handler's first parameter does not accept the message it is registered for.
        UndeclaredDependency: a reaction returns a command of a module its module does not depend on.
        BoundaryViolation: a reaction returns a command internal to another module.
        ViewInCommandHandler: a command handler reads a view.
        MissingDecision: a command handler executes a command on an aggregate that does not decide it.
        ConfigurationError: a reaction returns a command no module handles.
    """
    for module in modules.values():
        for parameter, handlers in (("commands", module.commands), ("queries", module.queries)):
            for message_type, handler in handlers.items():
                where = f"module {module.name}: {parameter}={{{message_type.__name__}: {_name(handler)}}}"
                _check_takes(handler, message_type, where)
        for command_type, handler in module.commands.items():
            _check_command_body(module, command_type, handler)
        for manager in module.process_managers:
            for event_type, reaction in manager.registered:
                where = f"process manager {manager.name} of module {module.name}: reaction {_name(reaction)}"
                _check_takes(reaction, event_type, f"{where}, registered with on({event_type.__name__})")
                _check_targets(module, ownership, reaction, where)
        for projector in module.projections:
            for event_type, handler in projector.registered:
                where = f"projector {type(projector).__qualname__} of module {module.name}: {_name(handler)}"
                how = "routed with @handles" if hasattr(handler, "__citadel_handles__") else "registered with on"
                _check_takes(handler, event_type, f"{where}, {how}({event_type.__name__})")
        _warn_unexposed(module)


def _name(handler: Callable[..., Any]) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


def _check_takes(handler: Callable[..., Any], message_type: type, where: str) -> None:
    takes = parameter_mismatch(handler, message_type)
    if takes is None:
        return
    name, wanted = _name(handler), message_type.__name__
    raise HandlerMismatch(
        f"{where}, but {name} takes `{takes}`, not {wanted}; register {name} for the type it takes, or give "
        f"{wanted} a handler whose first parameter is annotated {wanted}"
    )


def _check_targets(module: Module, ownership: MessageOwnership, reaction: Callable[..., Any], where: str) -> None:
    try:
        returns = inspect.signature(reaction, eval_str=True).return_annotation
    except Exception:  # an annotation that does not resolve here: nothing to check
        return
    for command_type in sorted(annotated_classes(returns, Command), key=lambda t: t.__name__):
        name = command_type.__name__
        try:
            owner = ownership.owner_of(command_type)
        except ConfigurationError:
            raise ConfigurationError(
                f"{where} returns {name}, which no module of the application handles; list {name} in the "
                "commands= of the module it belongs to"
            ) from None
        if owner is module:
            continue
        if owner.name not in module.depends_on:
            raise UndeclaredDependency(
                f"{where} returns {name} of module {owner.name!r}, but module {module.name!r} does not declare "
                f"depends_on=[{owner.name!r}]; add {owner.name!r} to its depends_on"
            )
        if not owner.is_public(command_type):
            raise BoundaryViolation(
                [
                    f"{where} returns {name}, which is internal to module {owner.name!r}; send a command of "
                    f"its contract, or add {name} to it"
                ]
            )


def _warn_unexposed(module: Module) -> None:
    messages = [*module.commands, *module.queries]
    if messages and not any(module.is_public(m) for m in messages):
        log.warning(
            "module %r exposes nothing over HTTP: none of its commands or queries is in a contract; pass "
            "contract= (the Python module of its public messages, or a list of them) to Module(%r, ...) to "
            "serve them",
            module.name,
            module.name,
        )


def _check_command_body(module: Module, command_type: type, handler: Callable[..., Any]) -> None:
    """Read a command handler's source: it may not read views, and what it executes on an aggregate must be
    decided there. Handlers whose source cannot be read (built-ins, lambdas, partials) are not checked."""
    found = _parsed(handler)
    if found is None:
        return
    function, node = found
    positional = [*node.args.posonlyargs, *node.args.args]
    if len(positional) < 2:
        return
    message, ctx = positional[0].arg, positional[1].arg
    where = f"module {module.name}: command handler {_name(handler)} (for {command_type.__name__})"
    names = names_seen_by(function)
    for call in ast.walk(node):
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == ctx
        ):
            continue
        if call.func.attr == "view":
            shown = ast.unparse(call.args[0]) if call.args else "..."
            raise ViewInCommandHandler(view_in_command_message(where, shown))
        if call.func.attr == "execute" and len(call.args) >= 3:
            arg = call.args[2]
            executed = command_type if isinstance(arg, ast.Name) and arg.id == message else _constructed(arg, names)
            _check_decided(call.args[0], names, executed, where)


def _check_decided(node: ast.expr, names: Mapping[str, Any], command_type: type | None, where: str) -> None:
    decider = resolve(node, names)
    if not isinstance(decider, Decider) or decider.commands is None or decider.state_type is None:
        return  # not an aggregate's decider: which commands it decides is not known
    if command_type is not None and command_type not in decider.commands:
        on = f"{where} executes {command_type.__name__} on {ast.unparse(node)}, but "
        raise MissingDecision(decider.state_type, command_type, where=on)


def _parsed(handler: Callable[..., Any]) -> tuple[Any, ast.FunctionDef | ast.AsyncFunctionDef] | None:
    function = inspect.unwrap(handler)
    if not inspect.isfunction(function) or function.__name__ == "<lambda>":
        return None
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name != function.__name__:
        return None  # not what runs (the file changed since it was imported, say): nothing to check
    return function, node


def _constructed(node: ast.expr, names: Mapping[str, Any]) -> type | None:
    """The command class of an expression ``SomeCommand(...)`` (None for anything else)."""
    if not isinstance(node, ast.Call):
        return None
    cls = resolve(node.func, names)
    return cls if isinstance(cls, type) and issubclass(cls, Command) else None
