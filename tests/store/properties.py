"""Property tests: whatever the sequence of appends, versions and positions stay consistent (run on every
backend by ``test_store_suite``; here rather than in the shipped suite, which does not need hypothesis)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citadel import ConcurrencyError
from citadel.testing.store_suite import Happened, StoreHarness

# (stream index, number of events, expectation: None = any, True = the right version, False = a wrong one)
appends = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from([None, True, False])), min_size=1, max_size=25
)


class PropertySuite(StoreHarness):
    """Random sequences of appends, sequential or concurrent."""

    # The same property runs in each backend's class (one method, several executors): each example opens its own
    # store, so nothing leaks between them.
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(plan=appends, concurrent=st.booleans())
    def test_versions_are_contiguous_and_the_log_keeps_append_order(
        self, tmp_path: Path, plan: list[tuple[int, int, bool | None]], concurrent: bool
    ) -> None:
        self.tmp_path = tmp_path

        async def scenario() -> None:
            await self.empty_storage()
            async with self.opened() as store:
                expected: dict[str, list[int]] = {}
                counter = 0

                async def one(stream_index: int, count: int, mode: bool | None, values: list[int]) -> None:
                    stream = f"s{stream_index}"
                    current = len(expected.get(stream, [])) if not concurrent else None
                    version = None if mode is None or current is None else (current if mode else current + 1)
                    try:
                        await store.append(stream, [Happened(n=v) for v in values], version)
                    except ConcurrencyError:
                        assert mode is False
                        return
                    assert mode is not False or concurrent
                    expected.setdefault(stream, []).extend(values)

                jobs = []
                for stream_index, count, mode in plan:
                    values = list(range(counter, counter + count))
                    counter += count
                    jobs.append(one(stream_index, count, mode, values))
                if concurrent:
                    await asyncio.gather(*jobs)
                else:
                    for job in jobs:
                        await job

                log = await store.read_all(limit=10_000)
                positions = [r.position for r in log]
                assert positions == sorted(set(positions))
                for stream, values in expected.items():
                    records = await store.read_stream(stream)
                    assert [r.version for r in records] == list(range(1, len(values) + 1))
                    assert sorted(r.event.n for r in records) == sorted(values)  # type: ignore[attr-defined]
                    if not concurrent:
                        assert [r.event.n for r in records] == values  # type: ignore[attr-defined]
                # the log holds each append's events contiguously, in the order the appends were made
                if not concurrent:
                    assert [r.event.n for r in log] == sorted(r.event.n for r in log)  # type: ignore[attr-defined]

        asyncio.run(scenario())
