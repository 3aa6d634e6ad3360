"""Dead letters grouped by failure: the exception type (the stored error's leading ``Name:``) and the type of the
parked message, so that an operator fixes a cause once and then retries or discards its whole group.

An inbox's letters are messages of the broker (their position is the broker stream's sequence, not one of this
log), so their message type is the inbox's, not an event's of this log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from citadel.store.base import DeadLetter

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["LetterGroup", "Outcome", "exception_type", "letter_groups", "retry_or_discard"]

_EXCEPTION = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*):")
MAX_LETTERS = 1000
"""Letters one form may name."""


@dataclass(frozen=True, slots=True)
class LetterGroup:
    """Letters that failed alike: one exception type on one message type."""

    exception: str
    message_type: str
    letters: list[DeadLetter]

    @property
    def key(self) -> str:
        return f"{self.exception} on {self.message_type}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a retry or discard did: the letters done, and each refused one with why."""

    done: list[int]
    failed: list[tuple[int, str]]


def exception_type(error: str) -> str:
    """The exception's name a stored error starts with (``RuntimeError: ...``), else ``error``."""
    found = _EXCEPTION.match(error)
    return found.group(1) if found else "error"


async def letter_groups(application: Application) -> list[LetterGroup]:
    """Every dead letter of this service, grouped, groups in order of their oldest letter.

    Raises:
        CitadelError: the store cannot be read.
    """
    store = application.store
    groups: dict[tuple[str, str], list[DeadLetter]] = {}
    for letter in await store.dead_letters():
        if letter.consumer.startswith("inbox:"):
            message_type = "a message of the broker"
        else:
            records = await store.read_all(letter.position, 1)
            found = bool(records) and records[0].event_id == letter.event_id
            message_type = records[0].type if found else "an event no longer in the log"
        groups.setdefault((exception_type(letter.error), message_type), []).append(letter)
    return [LetterGroup(exception, kind, letters) for (exception, kind), letters in groups.items()]


async def retry_or_discard(application: Application, action: str, ids: list[int]) -> Outcome:
    """Retry (``action`` "retry") or discard each letter of ``ids``, in order; a letter that fails does not stop
    the others (a failed retry stays parked, with the cause to fix)."""
    done, failed = [], []
    for letter_id in ids:
        try:
            if action == "retry":
                await application.retry_dead_letter(letter_id)
            else:
                await application.discard_dead_letter(letter_id)
        except Exception as exc:  # whatever processing raised: the operator reads it, the letter stays
            failed.append((letter_id, f"{type(exc).__name__}: {exc}"))
        else:
            done.append(letter_id)
    return Outcome(done, failed)
