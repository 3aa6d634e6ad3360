"""Finding the application a command line names (``package.module:attribute``)."""

from __future__ import annotations

import importlib
import os
import sys

from citadel.app import Application
from citadel.errors import ConfigurationError

__all__ = ["load_application"]


def load_application(spec: str) -> Application:
    """Import ``package.module:attribute`` and return the ``Application`` it names.

    The current directory is importable, as for ``python -m``. The attribute may also be a function that
    returns an application.

    Raises:
        ConfigurationError: the spec is malformed, the module cannot be imported, or the attribute is not an
            application (the message says which, and how to fix it).
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"APP must look like package.module:attribute (e.g. examples.shop:app), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} ({exc}); run from the project's directory or install the package"
        ) from exc
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if callable(target) and not isinstance(target, Application):
        try:
            target = target()
        except TypeError as exc:
            raise ConfigurationError(
                f"{spec} is a function that cannot be called without arguments ({exc}); "
                "point APP at an Application, or at a function that takes none"
            ) from exc
    if not isinstance(target, Application):
        raise ConfigurationError(f"{spec} is a {type(target).__name__}, not a citadel.Application")
    return target
