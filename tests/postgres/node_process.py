"""One application node for the failover test: starts the test application's consumers and runs until killed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from mini import build


async def main(store: str) -> None:
    app = build(store=store, lease_ttl=1.0)
    await app.start()
    print(app.node_id, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
