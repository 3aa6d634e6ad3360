"""Group commit, where a backend batches concurrent commits into shared transactions (SQLite, PostgreSQL): run on
those backends by ``test_store_suite`` (it is an optimisation, not part of the store contract)."""

from __future__ import annotations

import asyncio

from citadel import NO_STREAM
from citadel.store.base import EventStore
from citadel.testing.store_suite import Happened, StoreHarness


class GroupCommitSuite(StoreHarness):
    """Concurrent commits share transactions."""

    async def test_200_concurrent_appends_to_different_streams_all_commit_in_a_few_transactions(
        self, store: EventStore
    ) -> None:
        results = await asyncio.gather(*(store.append(f"s-{i}", [Happened(n=i)], NO_STREAM) for i in range(200)))
        records = await store.read_all(limit=1000)
        assert sorted(r.last_position for r in results) == [r.position for r in records]
        assert len(records) == 200
        # Every event of one transaction carries that transaction's timestamp.
        transactions = {r.recorded_at for r in records}
        assert len(transactions) <= 5
