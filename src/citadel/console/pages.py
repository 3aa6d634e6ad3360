"""The console's pages and actions, each a handler from a ``Call`` (an administrator's request, parameters read)
to a reply. ``routes`` wraps them with the gate and with the refusal pages."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from citadel.console.consumers import Rates, Rebuild, Rebuilds, consumer_rows
from citadel.console.deployment import deployment_of
from citadel.console.letters import MAX_LETTERS, letter_groups, retry_or_discard
from citadel.console.module_map import crossings, mermaid, module_cards
from citadel.console.rendering import page
from citadel.console.streams import Search, chain_of, event_at, payload_of, search
from citadel.console.web import Call, Refusal, number, optional_number, redirect, text, timestamp
from citadel.http.raw import Reply, json_reply
from citadel.projection_admin import consumer_status

if TYPE_CHECKING:
    from citadel.app import Application

__all__ = ["Pages"]

MAX_LIMIT = 200


class Pages:
    """The handlers of one application's console."""

    def __init__(self, application: Application) -> None:
        self.application = application
        self.rates = Rates()
        self.rebuilds = Rebuilds(application)

    async def modules(self, call: Call) -> Reply:
        """The module map."""
        cards = module_cards(self.application)
        crossed = crossings(self.application)
        return page("modules.html", call.base, cards=cards, crossings=crossed, mermaid=mermaid(cards, crossed))

    async def streams(self, call: Call) -> Reply:
        """The streams browser: a search form and the events it finds."""
        wanted = Search(
            stream=text(call.param("stream"), "stream"),
            type=text(call.param("type"), "type"),
            since=timestamp(call.param("since"), "since"),
            until=timestamp(call.param("until"), "until"),
            start=optional_number(call.param("from"), "from", 0),
            limit=optional_number(call.param("limit"), "limit", 50, low=1, high=MAX_LIMIT),
        )
        found = await search(self.application.store, wanted)
        more = None
        if found.next_start is not None:
            kept = {k: call.param(k) for k in ("stream", "type", "since", "until", "limit") if call.param(k)}
            more = f"{call.base}/streams?{urlencode({**kept, 'from': found.next_start})}"
        types = sorted(info.name for info in self.application.registry)
        form = {k: call.param(k) for k in ("stream", "type", "since", "until", "from", "limit")}
        return page("streams.html", call.base, found=found, form=form, more=more, types=types)

    async def event(self, call: Call) -> Reply:
        """One event: its metadata, payload and correlation chain."""
        position = number(call.param("position"), "position")
        store = self.application.store
        record = await event_at(store, position)
        chain = await chain_of(store, record, optional_number(call.param("chain_from"), "chain_from", 0))
        return page("event.html", call.base, record=record, payload=payload_of(record), chain=chain)

    async def consumers(self, call: Call) -> Reply:
        """Projections and process managers, with the rebuild buttons."""
        rows = await consumer_rows(self.application, self.rates)
        head = await self.application.store.head_position()
        return page("consumers.html", call.base, rows=rows, head=head, rebuilds=self.rebuilds.jobs)

    def _projection(self, name: str) -> str:
        name = text(name, "projection")
        if name not in self.application.projections:
            raise Refusal(404, f"there is no projection named {name!r}")
        return name

    async def rebuild(self, call: Call) -> Reply:
        """Start a rebuild (a form post), then show its progress."""
        name = self._projection(call.field("projection"))
        if self.rebuilds.running(name):
            raise Refusal(409, f"{name} is being rebuilt already; its progress is on the rebuild page")
        self.rebuilds.start(name)
        return redirect(f"{call.base}/rebuild?{urlencode({'projection': name})}")

    async def _progress(self, name: str) -> Rebuild:
        """The rebuild of ``name`` this process runs or ran; else, for an async projection, how far it is (by its
        stored checkpoint when another worker of the node runs it, and may be rebuilding it)."""
        job = self.rebuilds.jobs.get(name)
        if job is not None:
            return job
        binding, store = self.application.projections[name], self.application.store
        if binding.inline:
            raise Refusal(404, f"{name} has not been rebuilt by this process; start it on the projections page")
        found = await consumer_status(name, binding.module, "async", self.application.consumers.get(name), store)
        return Rebuild(name, reached=found.position, target=await store.head_position(), done=found.lag == 0)

    async def rebuild_page(self, call: Call) -> Reply:
        """The progress of a projection's rebuild, which the script keeps current."""
        job = await self._progress(self._projection(call.param("projection")))
        return page("rebuild.html", call.base, job=job)

    async def rebuild_progress(self, call: Call) -> Reply:
        """The progress of a rebuild as JSON, for the rebuild page's script."""
        job = await self._progress(self._projection(call.param("projection")))
        return json_reply(job.as_json())

    async def dead_letters(self, call: Call) -> Reply:
        """The dead letters, grouped by failure."""
        done = optional_number(call.param("done"), "done", 0, high=MAX_LETTERS)
        action = call.param("action") if call.param("action") in ("retry", "discard") else ""
        groups = await letter_groups(self.application)
        return page("letters.html", call.base, groups=groups, done=done, action=action, failed=[])

    async def act_on_letters(self, call: Call) -> Reply:
        """Retry or discard the letters a form names (one, or a whole group)."""
        action = call.field("action")
        if action not in ("retry", "discard"):
            raise Refusal(400, "action must be retry or discard")
        values = call.form.get("letter", [])
        if not values:
            raise Refusal(400, "name at least one letter")
        if len(values) > MAX_LETTERS:
            raise Refusal(413, f"a form may name at most {MAX_LETTERS} letters")
        ids = list(dict.fromkeys(number(v, "letter", low=1) for v in values))
        outcome = await retry_or_discard(self.application, action, ids)
        if not outcome.failed:
            return redirect(f"{call.base}/dead-letters?{urlencode({'action': action, 'done': len(outcome.done)})}")
        groups = await letter_groups(self.application)
        return page(
            "letters.html", call.base, 409, groups=groups, done=len(outcome.done), action=action, failed=outcome.failed
        )

    async def deployment(self, call: Call) -> Reply:
        """Which modules run here and which elsewhere; the relay's and the inbox's positions."""
        return page("deployment.html", call.base, deployment=await deployment_of(self.application))
