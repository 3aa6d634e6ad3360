"""The event store's ports, one per capability; ``EventStore`` (``citadel.store.base``) is all of them together.

A backend implements each port in a module named after it (``store/sqlite/event_log.py``,
``store/sqlite/views.py``, ...), and ``citadel.testing.store_suite`` has one test class per port to prove it.

- ``Lifecycle``: ``open`` and ``close``.
- ``EventLog``: append, commit, read, subscribe, the head and ``count_after`` (lag as a count of events), and the
  idempotency records a commit stores with its events.
- ``Snapshots``: the folded states a commit stores beside its events.
- ``ViewStore``: view tables, their readers, and inline projections.
- ``Checkpoints``: where each consumer is, the leases that let one process run it, and the projection writes
  that move a checkpoint with the views.
- ``DeadLetters``: events a consumer gave up on.
- ``Keys``: the data keys behind encryption at rest (re-wrapping, which master keys they need).
- ``Migrations``: modules' own versioned schema steps.
"""

from __future__ import annotations

from citadel.store.ports.checkpoints import Checkpoints
from citadel.store.ports.dead_letters import DeadLetters
from citadel.store.ports.event_log import EventLog
from citadel.store.ports.keys import Keys
from citadel.store.ports.lifecycle import Lifecycle
from citadel.store.ports.migrations import Migrations
from citadel.store.ports.snapshots import Snapshots
from citadel.store.ports.views import ViewStore

__all__ = ["Checkpoints", "DeadLetters", "EventLog", "Keys", "Lifecycle", "Migrations", "Snapshots", "ViewStore"]
