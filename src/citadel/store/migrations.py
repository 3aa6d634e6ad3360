"""Modules' own migrations: versioned SQL steps, with ``{table:name}`` standing for the module's table."""

from __future__ import annotations

import re
from collections.abc import Callable

from citadel.errors import ConfigurationError, StoreError

__all__ = ["check_known", "expand"]

_TABLE = re.compile(r"\{table:([a-z][a-z0-9_]*)\}")


def expand(step: str, table: Callable[[str], str]) -> str:
    """Replace each ``{table:name}`` in ``step`` by ``table(name)``.

    Raises:
        ConfigurationError: a brace that is not a ``{table:name}`` placeholder remains.
    """
    expanded = _TABLE.sub(lambda match: table(match.group(1)), step)
    if "{table:" in expanded:
        raise ConfigurationError(f"malformed table placeholder in migration step: {step!r}")
    return expanded


def check_known(module: str, recorded: int, steps: int) -> None:
    """Refuse to run when the database has more steps of ``module`` than the code knows."""
    if recorded > steps:
        raise StoreError(
            f"module {module!r} is at migration {recorded} in the database but the code has only {steps} steps; "
            "deploy the newer code"
        )
