"""Ids draw their random bits from the operating system, not from a generator that can be seeded or shared."""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter

from citadel import new_id


def random_bits(value: str) -> int:
    """The 74 random bits of a version-7 id (the 12 after the version, the 62 after the variant)."""
    number = uuid.UUID(value).int
    return ((number >> 64) & 0xFFF) << 62 | number & ((1 << 62) - 1)


def test_reseeding_pythons_random_does_not_repeat_an_id() -> None:
    random.seed(1234)
    first = new_id()
    random.seed(1234)
    second = new_id()

    assert random_bits(first) != random_bits(second)


def test_ids_do_not_come_from_pythons_random_generator() -> None:
    state = random.getstate()
    try:
        random.seed(99)
        expected = random.getrandbits(80)
        random.seed(99)
        ids = [new_id() for _ in range(1000)]
        assert random.getrandbits(80) == expected  # ids took nothing from it
    finally:
        random.setstate(state)
    assert len({random_bits(i) for i in ids}) == 1000


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    new_id()  # the parent holds random parts not handed out yet
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, ",".join(new_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = pipe.read().split(",")
    os.waitpid(child, 0)
    ours = [new_id() for _ in range(100)]

    assert len(theirs) == 100
    assert not {random_bits(i) for i in theirs} & {random_bits(i) for i in ours}


def test_every_random_hex_digit_of_many_ids_takes_every_value() -> None:
    ids = [new_id() for _ in range(5000)]
    positions = [15, 16, 17, 20, 21, 22, *range(24, 36)]  # every fully random digit of the text

    for position in positions:
        assert len(Counter(i[position] for i in ids)) == 16, position
    assert {i[19] for i in ids} == set("89ab")  # the variant's digit: two random bits
