"""Message-driven integration: checkpointed consumers and process managers."""

from __future__ import annotations

from citadel.messaging.consumer import Consumer, RetryPolicy
from citadel.messaging.process_manager import ProcessManager

__all__ = ["Consumer", "ProcessManager", "RetryPolicy"]
