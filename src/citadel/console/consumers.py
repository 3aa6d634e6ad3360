"""Projections and process managers as the console shows them (position, lag in events, rate, last error), and
rebuilds that run as background tasks of the serving process while it goes on serving.

A rebuild's progress is the position its replay has reached over the head of the log when it started, as
``Application.rebuild_projection`` reports it; the page's script polls it as JSON. Rebuilds are kept per
projection in the process that runs them: a second rebuild of a projection is refused while one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from citadel.errors import CitadelError
from citadel.projection_admin import (
    ProjectionStatus,
    consumer_status,
    process_manager_statuses,
    projection_statuses,
)

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["ConsumerRow", "Rates", "Rebuild", "Rebuilds", "consumer_rows"]


@dataclass(frozen=True, slots=True)
class ConsumerRow:
    """A projection's or process manager's status, with its processing rate here (None when it does not run
    here, or has not been seen long enough to tell)."""

    status: ProjectionStatus
    rate: float | None
    rebuildable: bool


class Rates:
    """Events processed per second by each consumer of this process, between two looks at the page."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, int, float | None]] = {}

    def rate(self, name: str, processed: int) -> float | None:
        """The rate since the previous look (kept for a second at least, so that quick reloads do not read 0)."""
        now = time.monotonic()
        before = self._seen.get(name)
        if before is None:
            self._seen[name] = (now, processed, None)
            return None
        then, count, last = before
        if now - then < 1.0:
            return last
        rate = max(processed - count, 0) / (now - then)
        self._seen[name] = (now, processed, rate)
        return rate


async def consumer_rows(application: Application, rates: Rates) -> list[ConsumerRow]:
    """Every projection, process manager and the outbox relay of this service, with rates.

    Raises:
        CitadelError: the store cannot be read.
    """
    store, runners, local = application.store, application.consumers, application.topology.local
    statuses = await projection_statuses(application.projections, runners, store, local=local)
    statuses += await process_manager_statuses(application.modules.values(), runners, store, local=local)
    relay = application.topology.relay
    if relay is not None:
        statuses.append(await consumer_status(relay.name, "", "relay", relay, store))
    rows = []
    for status in statuses:
        runner = runners.get(status.name)
        rate = rates.rate(status.name, runner.processed) if runner is not None and runner.active else None
        rows.append(ConsumerRow(status, rate, rebuildable=status.name in application.projections))
    return rows


@dataclass
class Rebuild:
    """One rebuild: how far it got, and how it ended (``error`` when it failed)."""

    projection: str
    reached: int = 0
    target: int = 0
    done: bool = False
    error: str | None = None
    started: float = field(default_factory=time.time)

    @property
    def percent(self) -> int:
        """How far the replay is, from 0 to 100 (100 once it is done)."""
        if self.done and self.error is None:
            return 100
        return min(99, self.reached * 100 // self.target) if self.target else 0

    def as_json(self) -> dict[str, Any]:
        state = "failed" if self.error is not None else "done" if self.done else "running"
        return {
            "projection": self.projection,
            "state": state,
            "reached": self.reached,
            "target": self.target,
            "percent": self.percent,
            "error": self.error,
        }


class Rebuilds:
    """The rebuilds this process runs or ran, by projection."""

    def __init__(self, application: Application) -> None:
        self.application = application
        self.jobs: dict[str, Rebuild] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def running(self, projection: str) -> bool:
        job = self.jobs.get(projection)
        return job is not None and not job.done

    def start(self, projection: str) -> Rebuild:
        """Start rebuilding ``projection`` in the background; return its job (the running one, if one runs)."""
        job = self.jobs.get(projection)
        if job is not None and not job.done:
            return job
        job = self.jobs[projection] = Rebuild(projection)
        task = asyncio.create_task(self._run(job), name=f"citadel-console-rebuild-{projection}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: Rebuild) -> None:
        def progress(reached: int, target: int) -> None:
            job.reached, job.target = reached, target

        try:
            job.reached = await self.application.rebuild_projection(job.projection, progress=progress)
            job.target = max(job.target, job.reached)
        except asyncio.CancelledError:
            job.error = "stopped with the server"
            raise
        except CitadelError as exc:
            job.error = str(exc)
        except Exception as exc:  # a projection's own code failed: the operator reads why on the page
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.done = True

    async def stop(self) -> None:
        """Cancel the rebuilds still running (the projection's checkpoint lets the next run go on)."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
