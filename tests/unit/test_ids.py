"""Ids are RFC 9562 version-7 UUIDs: unique, and ordered by creation time across milliseconds."""

from __future__ import annotations

import time
import uuid

from citadel import new_id


def test_ids_are_version_7_uuids_in_canonical_form() -> None:
    value = new_id()
    parsed = uuid.UUID(value)
    assert str(parsed) == value
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_ids_carry_the_creation_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    stamp = uuid.UUID(new_id()).int >> 80
    assert before <= stamp <= time.time_ns() // 1_000_000


def test_many_ids_are_all_distinct() -> None:
    assert len({new_id() for _ in range(100_000)}) == 100_000


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    first = new_id()
    time.sleep(0.002)
    assert new_id() > first
