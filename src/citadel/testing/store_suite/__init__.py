"""The conformance suite of event store backends: pytest test classes that a backend's tests subclass.

Each class proves one port of ``citadel.store.ports`` (``StoreSuite`` is all of them); a backend's test class
subclasses the ones it implements and says how to build its store::

    from citadel.store.memory import MemoryDatabase, MemoryEventStore
    from citadel.testing.store_suite import StoreSuite

    class TestMemoryStore(StoreSuite):
        async def empty_storage(self) -> None:      # before each test: an empty database
            self.database = MemoryDatabase()

        def create_store(self, registry, **options):  # every store of one test on the same database
            return MemoryEventStore(registry, database=self.database, **options)

        # The at-rest suites read the storage behind the store's back (see ``StoreHarness``):
        async def stored_bytes(self): ...
        async def stored_payloads(self, stream_id): ...
        async def overwrite_payloads(self, stream_id, data): ...
        async def stored_idempotency_result(self, key): ...

``create_store`` builds an unopened store with the given options (``keyring``, ``idempotency_ttl``); the suite
opens and closes it. Stores built during one test must share their data, as processes share a database: some
tests open a second store to play another process, or reopen with other keys. The suite needs pytest and
pytest-asyncio with ``asyncio_mode = "auto"`` (its tests and fixtures are coroutines without markers). Only this
package imports pytest: ``citadel.testing`` itself does not.
"""

from __future__ import annotations

from citadel.testing.store_suite.checkpoints import CheckpointsSuite
from citadel.testing.store_suite.dead_letters import DeadLettersSuite, SnapshotsSuite
from citadel.testing.store_suite.encryption import EncryptionSuite
from citadel.testing.store_suite.event_log import LogReadsSuite
from citadel.testing.store_suite.forgetting import ForgettingSuite
from citadel.testing.store_suite.harness import ITEMS, Happened, Noted, StoreHarness, found_at_rest, make_registry
from citadel.testing.store_suite.log_concurrency import ConcurrencySuite, ReactionChainsSuite, SubscriptionsSuite
from citadel.testing.store_suite.migrations import MigrationsSuite
from citadel.testing.store_suite.views import ViewStoreSuite

__all__ = [
    "ITEMS",
    "CheckpointsSuite",
    "ConcurrencySuite",
    "DeadLettersSuite",
    "EncryptionSuite",
    "EventLogSuite",
    "ForgettingSuite",
    "Happened",
    "KeysSuite",
    "LogReadsSuite",
    "MigrationsSuite",
    "Noted",
    "ReactionChainsSuite",
    "SnapshotsSuite",
    "StoreHarness",
    "StoreSuite",
    "SubscriptionsSuite",
    "ViewStoreSuite",
    "found_at_rest",
    "make_registry",
]


class EventLogSuite(LogReadsSuite, ConcurrencySuite, SubscriptionsSuite, ReactionChainsSuite):
    """The ``EventLog`` port: appends, commits, reads, idempotency, counts, concurrency, subscriptions, chains."""


class KeysSuite(EncryptionSuite, ForgettingSuite):
    """The ``Keys`` port and encryption at rest through every other port (needs the ``stored_*`` hooks)."""


class StoreSuite(
    EventLogSuite,
    SnapshotsSuite,
    ViewStoreSuite,
    CheckpointsSuite,
    DeadLettersSuite,
    KeysSuite,
    MigrationsSuite,
):
    """Every port of ``EventStore``: what a complete backend passes."""
