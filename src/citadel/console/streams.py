"""The streams browser's reads: events found by stream, type and time; one event; the events that share its
correlation id.

The store keeps no index by type, time or correlation id, so the browser reads the log forward in pages, up to a
budget of events per request, and offers to go on from where it stopped: a search costs the same however long
the log is. One stream (a name without ``*``) is read through its own index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from citadel.errors import NotFound
from citadel.store.base import EventStore, RecordedEvent
from citadel.store.records import FORGOTTEN, payload_text

__all__ = ["FORGOTTEN", "Chain", "Found", "Search", "chain_of", "event_at", "payload_of", "search"]

"""What the console shows for the payload of an event whose subject was forgotten (as ``events tail`` does)."""
PAGE = 500
SCAN_BUDGET = 5000
"""Events a search reads at most per request."""
CHAIN_BUDGET = 10_000
"""Events the search for a correlation chain reads at most per request."""


@dataclass(frozen=True, slots=True)
class Search:
    """What the operator asks for: a stream (a trailing ``*`` matches a prefix), a type, a time range, where to
    start (a position of the log, or a version of the one stream) and how many events to show."""

    stream: str = ""
    type: str = ""
    since: float | None = None
    until: float | None = None
    start: int = 0
    limit: int = 50

    @property
    def filtered(self) -> bool:
        return bool(self.stream or self.type or self.since is not None or self.until is not None)


@dataclass(frozen=True, slots=True)
class Found:
    """The events found, in log order, and where a next search would start (None: nothing is left to read);
    ``scanned``: at most how many events were read."""

    records: list[RecordedEvent]
    next_start: int | None
    scanned: int
    one_stream: bool


def matches(record: RecordedEvent, search: Search) -> bool:
    """Whether ``record`` is one the search asks for."""
    if search.type and record.type != search.type:
        return False
    if search.since is not None and record.recorded_at < search.since:
        return False
    if search.until is not None and record.recorded_at > search.until:
        return False
    stream = search.stream
    if stream.endswith("*"):
        return record.stream_id.startswith(stream[:-1])
    return not stream or record.stream_id == stream


async def search(store: EventStore, wanted: Search) -> Found:
    """The events ``wanted`` asks for: the last ones of the log without a filter or a start, else those found from
    the start on, within the budget."""
    if not wanted.filtered and not wanted.start:
        records = await store.read_last(wanted.limit)
        return Found(records, None, len(records), one_stream=False)
    if wanted.stream and not wanted.stream.endswith("*"):
        history = await store.read_stream(wanted.stream, max(wanted.start, 1))
        kept = [r for r in history if matches(r, wanted)]
        more = len(kept) > wanted.limit
        kept = kept[: wanted.limit]
        return Found(kept, kept[-1].version + 1 if more else None, len(history), one_stream=True)
    return await _scan(store, wanted)


async def _scan(store: EventStore, wanted: Search) -> Found:
    position, pages = max(wanted.start, 1), 0
    kept: list[RecordedEvent] = []
    while pages < SCAN_BUDGET // PAGE:
        if wanted.type:  # only that type is read (and decrypted)
            page, upto = await store.read_all_of([wanted.type], position, PAGE)
        else:
            page = await store.read_all(position, PAGE)
            upto = page[-1].position if page else position - 1
        if upto < position:
            return Found(kept, None, pages * PAGE, one_stream=False)
        pages += 1
        for record in page:
            if wanted.until is not None and record.recorded_at > wanted.until:
                return Found(kept, None, pages * PAGE, one_stream=False)  # the log goes on in time order
            if matches(record, wanted):
                kept.append(record)
                if len(kept) == wanted.limit:
                    return Found(kept, record.position + 1, pages * PAGE, one_stream=False)
        position = upto + 1
    return Found(kept, position, pages * PAGE, one_stream=False)


async def event_at(store: EventStore, position: int) -> RecordedEvent:
    """The event at ``position``.

    Raises:
        NotFound: no event of the log is at that position.
    """
    records = await store.read_all(position, 1) if position > 0 else []
    if not records or records[0].position != position:
        raise NotFound(f"there is no event at position {position}")
    return records[0]


@dataclass(frozen=True, slots=True)
class Chain:
    """The events that share a correlation id, in log order, found between ``start`` and ``reached``;
    ``complete`` when that range covers the whole log."""

    records: list[RecordedEvent]
    start: int
    reached: int
    complete: bool


async def chain_of(store: EventStore, record: RecordedEvent, start: int = 0) -> Chain:
    """The events with ``record``'s correlation id, read from ``start`` on (0: from the beginning of the log when
    it fits the budget, else from ``record`` itself), within the budget."""
    if record.correlation_id is None:
        return Chain([record], record.position, record.position, complete=False)
    if not start:
        start = 1 if await store.count_after(0) <= CHAIN_BUDGET else record.position
    position, scanned, reached = start, 0, start - 1
    found: list[RecordedEvent] = []
    while scanned < CHAIN_BUDGET:
        page = await store.read_all(position, PAGE)
        if not page:
            return Chain(found, start, reached, complete=start == 1)
        scanned += len(page)
        found += [r for r in page if r.correlation_id == record.correlation_id]
        reached = page[-1].position
        position = reached + 1
    return Chain(found, start, reached, complete=False)


def payload_of(record: RecordedEvent) -> str:
    """The payload as the operator reads it: indented JSON, the text as stored when it is not JSON, or
    ``FORGOTTEN`` when its subject was forgotten (its key is deleted)."""
    text = payload_text(record)
    if record.forgotten:
        return text
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
