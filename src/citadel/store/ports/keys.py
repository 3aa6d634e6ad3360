"""The key port: the data keys a store keeps for encryption at rest, wrapped by master keys.

Sealing and opening payloads is the same for every backend (``citadel.store.sealing``); a backend stores the
wrapped keys, and answers these two questions about them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from citadel.security.encryption import MasterKeys

__all__ = ["Keys"]


class Keys(Protocol):
    """Administration of the stored data keys."""

    async def rewrap_keys(self, master: MasterKeys) -> int:
        """Re-wrap every stored data key with ``master``'s current key (no event is rewritten); return how many
        changed. ``master`` must still hold the keys that wrapped them."""

    async def master_key_ids(self) -> set[str]:
        """Return the ids of the master keys that wrap the stored data keys (forgotten keys need none); a store
        opened with a keyring refuses to open when its master keys miss one of them."""
