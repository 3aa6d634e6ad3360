"""The ASGI ``lifespan`` scope: start the application before serving, stop it after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGI_VERSION", "ASGIApp", "Lifespan", "Message"]

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]
Message = MutableMapping[str, Any]
ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}

log = logging.getLogger("citadel.http.server")


class Lifespan:
    """Runs the application's ``lifespan`` scope. An application that fails before it even asks for the startup
    message has no lifespan, and is served all the same."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.listening = False
        self.started = False

    async def _receive(self) -> Message:
        self.listening = True
        return await self.inbox.get()

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        try:
            await self.app(scope, self._receive, self.outbox.put)
            await self.outbox.put({"type": "lifespan.returned"})  # whoever waits for an answer stops waiting
        except Exception as exc:
            if not self.listening:
                log.info("the application has no lifespan (%s: %s); serving it without", type(exc).__name__, exc)
                await self.outbox.put({"type": "lifespan.unsupported"})
            elif not self.started:
                await self.outbox.put({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
            else:
                log.exception("the application's lifespan failed")
                await self.outbox.put({"type": "lifespan.shutdown.failed", "message": str(exc)})

    async def startup(self) -> None:
        """Start the application.

        Raises:
            RuntimeError: the application reported (or raised) a failure to start.
        """
        self.task = asyncio.get_running_loop().create_task(self._main())
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the application failed to start: {message.get('message', '')}")
        self.started = message["type"] == "lifespan.startup.complete"

    async def shutdown(self) -> None:
        """Stop the application (when it started through its lifespan)."""
        if not self.started or self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        message = await self.outbox.get()
        if message["type"] == "lifespan.shutdown.failed":
            log.error("the application failed to stop: %s", message.get("message", ""))
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
