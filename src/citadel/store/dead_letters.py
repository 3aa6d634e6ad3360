"""What a dead letter keeps of its error when the store encrypts, whatever its backend.

An error's text may quote the event it failed on (a validation error echoing a value), so a store that encrypts
keeps it in two parts: the exception's class name in plaintext (``error``, for operators and health reports),
and the whole text sealed with the data key of the event's payload (``sealed``). Forgetting the event's
subject leaves the class only. A parked message that names no data key (an inbox's, a forgotten event's) keeps
its class only: there is nothing to seal the text with that forgetting would reach.
"""

from __future__ import annotations

import re
from typing import Any

from citadel.store.records import DeadLetter
from citadel.store.sealing import Sealer

__all__ = ["LETTER_COLUMNS", "letter_of", "parked_error"]

LETTER_COLUMNS = "id, consumer, position, event_id, error, attempts, recorded_at, sealed_error"
_CLASS = re.compile(r"[A-Za-z_]\w*")
_WITHHELD = " (the rest of its text is not kept: it may quote the event, which has no data key to seal it with)"
_FORGOTTEN = " (the rest of its text was sealed with the data key of a subject since forgotten)"


def _error_class(error: str) -> str:
    """The exception class that starts an error text (``"ValueError: ..."``), or ``"error"``."""
    found = _CLASS.match(error)
    return found.group(0) if found and error[found.end() : found.end() + 1] in (":", "") else "error"


def parked_error(sealer: Sealer | None, consumer: str, record: Any, error: str) -> tuple[str, bytes | None]:
    """The ``(error, sealed_error)`` columns of a new dead letter. ``record``'s data key must be open: a record
    read from the store names it (``key_id``); an inbox's parked message does not."""
    if sealer is None:  # nothing is promised of what a store without encryption keeps
        return error, None
    kind = _error_class(error)
    key_id = getattr(record, "key_id", None)
    sealed = None if key_id is None else sealer.seal_error(key_id, consumer, record.event_id, error)
    return (kind, sealed) if sealed is not None else (kind + _WITHHELD, None)


def letter_of(sealer: Sealer | None, row: Any) -> DeadLetter:
    """A stored row (``LETTER_COLUMNS``) as a dead letter, its error text opened when its key still exists."""
    letter_id, consumer, position, event_id, error, attempts, recorded_at, sealed = row
    if sealed is not None and sealer is not None:
        opened = sealer.open_error(consumer, event_id, bytes(sealed))
        error = error + _FORGOTTEN if opened is None else opened
    return DeadLetter(letter_id, consumer, position, event_id, error, attempts, recorded_at)
