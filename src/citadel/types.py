"""Bounded field types for contracts: a request that exceeds them is refused with 422 before any handler runs.

class RegisterUser(Command, name="users.RegisterUser"):
    email: Email
    name: Name
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["Email", "Id", "Ids", "Name", "Text"]

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
"""An identifier: 1 to 100 letters, digits, ``.``, ``_``, ``:`` or ``-`` (UUIDs fit)."""

Ids = Annotated[list[Id], msgspec.Meta(max_length=100)]
"""Up to 100 identifiers."""

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
"""A short human text: a name, a title (1 to 200 characters)."""

Text = Annotated[str, msgspec.Meta(max_length=100_000)]
"""A long human text (up to 100,000 characters)."""

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
"""An email address's length bounds (RFC 5321); its form is checked by the domain."""
