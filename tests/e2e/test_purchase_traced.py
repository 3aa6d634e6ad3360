"""One purchase, traced: the spans of create order → invoice opened by billing's process manager → pay → order
paid → access granted, read from the OpenTelemetry SDK's in-memory exporter, in one process and with billing as
a service of its own over the real NATS server. The test asserts the tree: which span is whose child, and which
links to which across the group commit, the log and NATS."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
from deployments import broker_namespace, three_services
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from shopper import can_read, invoice, order, order_status, over_http, pay, publish, register, settle

from examples.shop import build_app

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
"""The ``traceparent`` the client sends with its order: the order's request continues the caller's trace."""


class Tree:
    """The finished spans, searchable by name, parent and link."""

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = list(spans)

    def named(self, name: str, **attributes: object) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans
            if s.name == name and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
        ]

    def one(self, name: str, **attributes: object) -> ReadableSpan:
        found = self.named(name, **attributes)
        assert len(found) == 1, f"{len(found)} spans named {name!r} {attributes}: {sorted(s.name for s in self.spans)}"
        return found[0]

    def children(self, parent: ReadableSpan, name: str) -> list[ReadableSpan]:
        return [s for s in self.named(name) if s.parent is not None and s.parent.span_id == span_id(parent)]

    def child(self, parent: ReadableSpan, name: str) -> ReadableSpan:
        found = self.children(parent, name)
        assert len(found) == 1, f"{len(found)} children {name!r} of {parent.name!r}"
        return found[0]

    def linking_to(self, target: ReadableSpan, name: str) -> list[ReadableSpan]:
        return [s for s in self.named(name) if span_id(target) in {link.context.span_id for link in s.links}]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


async def purchase(client: httpx.AsyncClient) -> None:
    """Register, publish, order (sending ``CALLER``), wait for the invoice, pay it, wait until access is granted."""
    customer, guide = await register(client), await publish(client, 500)
    client.headers["traceparent"] = CALLER
    try:
        placed = await order(client, customer, guide)
    finally:
        del client.headers["traceparent"]
    bill = await invoice(client, placed.order_id, placed.position)
    assert (await pay(client, bill)).status_code == 200
    assert await order_status(client, placed.order_id, "paid") == "paid"
    assert await can_read(client, customer, guide, True)
    await settle(client)


def request_tree(tree: Tree, route: str, message: str) -> tuple[ReadableSpan, ReadableSpan]:
    """The SERVER span of ``POST route`` and its ``dispatch`` child, checked to hold the ``handle`` span or to
    send the message elsewhere; returns both."""
    served = tree.one(f"POST {route}")
    assert served.kind is SpanKind.SERVER
    assert dict(served.attributes or {})["http.response.status_code"] == 200
    dispatched = tree.child(served, f"dispatch {message}")
    return served, dispatched


def assert_commit_links(tree: Tree, dispatched: ReadableSpan) -> ReadableSpan:
    """The ``commit`` span of the batch that wrote ``dispatched``'s events: a root of its own, linked to it."""
    (commit,) = tree.linking_to(dispatched, "commit")
    assert commit.parent is None
    assert trace_id(commit) != trace_id(dispatched)
    return commit


def assert_reaction(tree: Tree, cause: ReadableSpan, event: str, manager: str, command: str) -> ReadableSpan:
    """The process manager ``manager``'s span for ``event``: a new trace, linked to ``cause`` (through the
    traceparent stored with the event), holding the ``dispatch`` of ``command``; returns that dispatch span."""
    (processed,) = [
        s
        for s in tree.linking_to(cause, f"process {event}")
        if s.attributes["messaging.consumer.group.name"] == manager
    ]
    assert processed.kind is SpanKind.CONSUMER
    assert processed.parent is None
    assert (processed.attributes or {})["messaging.system"] == "citadel"
    return tree.child(processed, f"dispatch {command}")


async def test_a_purchase_in_one_process_is_one_tree_of_spans_linked_across_the_log(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    app = build_app(store=f"sqlite:///{tmp_path / 'shop.db'}")
    async with app, over_http(app) as client:
        await purchase(client)
    tree = Tree(spans.get_finished_spans())

    served, created = request_tree(tree, "/orders/create-order", "orders.CreateOrder")
    assert f"{trace_id(served):032x}" == CALLER.split("-")[1]
    assert served.parent is not None
    assert f"{served.parent.span_id:016x}" == CALLER.split("-")[2]
    tree.child(created, "handle orders.CreateOrder")
    commit = assert_commit_links(tree, created)
    assert tree.children(commit, "project orders.OrderSummaries")

    opened = assert_reaction(tree, created, "orders.OrderCreated", "billing.invoicing", "billing.OpenInvoice")
    tree.child(opened, "handle billing.OpenInvoice")
    assert_commit_links(tree, opened)

    _, paid = request_tree(tree, "/billing/pay-invoice", "billing.PayInvoice")
    tree.child(paid, "handle billing.PayInvoice")
    assert_commit_links(tree, paid)
    marked = assert_reaction(tree, paid, "billing.InvoicePaid", "billing.invoicing", "orders.MarkOrderPaid")
    granted = assert_reaction(tree, marked, "orders.OrderPaid", "orders.access", "content.GrantAccess")
    tree.child(granted, "handle content.GrantAccess")


@contextlib.asynccontextmanager
async def shop_as_services(directory: Path, broker: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the shop's node; billing and analytics run as services of their own over NATS."""
    async with three_services(directory, broker) as deployed, contextlib.AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(over_http(app)) for app in deployed.services.values()]
        entry = nodes[list(deployed.services.values()).index(deployed.entry)]
        entry.nodes = nodes  # type: ignore[attr-defined]  # ``settle`` checks every node
        yield entry


def assert_over_nats(tree: Tree, sender: ReadableSpan, subject: str, message: str) -> ReadableSpan:
    """``sender`` (a ``dispatch`` of a module that runs elsewhere) sends ``message`` over NATS: its ``send`` child
    is the parent of the serving side's ``process`` span, in the same trace, which holds the ``dispatch`` there;
    returns that one."""
    sent = tree.child(sender, f"send {subject}")
    assert sent.kind is SpanKind.PRODUCER
    served = tree.child(sent, f"process {subject}")
    assert served.kind is SpanKind.CONSUMER
    assert served.attributes is not None
    assert served.attributes["messaging.system"] == "nats"
    assert trace_id(served) == trace_id(sender)
    return tree.child(served, f"dispatch {message}")


async def test_a_purchase_across_services_is_one_trace_through_nats_and_linked_through_the_inbox(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    broker = broker_namespace()
    prefix = broker.rsplit("/", 1)[1]
    async with shop_as_services(tmp_path, broker) as client:
        await purchase(client)
    tree = Tree(spans.get_finished_spans())

    # The order is written by the shop's node; billing imports OrderCreated through its inbox, whose span links to
    # the order's command (the traceparent travelled with the event), and reacts to the imported event.
    served, created = request_tree(tree, "/orders/create-order", "orders.CreateOrder")
    assert f"{trace_id(served):032x}" == CALLER.split("-")[1]
    assert_commit_links(tree, created)
    imported = [
        s
        for s in tree.linking_to(created, f"process {prefix}.events.orders.OrderCreated")
        if "billing" in str((s.attributes or {})["messaging.consumer.group.name"])
    ]
    assert len(imported) == 1
    assert imported[0].kind is SpanKind.CONSUMER
    assert imported[0].parent is None
    opened = assert_reaction(tree, imported[0], "orders.OrderCreated", "billing.invoicing", "billing.OpenInvoice")
    tree.child(opened, "handle billing.OpenInvoice")

    # The payment is sent from the shop's node to billing: one trace from the HTTP request to billing's handler.
    served, forwarded = request_tree(tree, "/billing/pay-invoice", "billing.PayInvoice")
    paid = assert_over_nats(tree, forwarded, f"{prefix}.rpc.billing.PayInvoice", "billing.PayInvoice")
    assert trace_id(tree.child(paid, "handle billing.PayInvoice")) == trace_id(served)
    assert_commit_links(tree, paid)

    # Billing marks the order paid on the shop's node, whose process manager grants access.
    marking = assert_reaction(tree, paid, "billing.InvoicePaid", "billing.invoicing", "orders.MarkOrderPaid")
    marked = assert_over_nats(tree, marking, f"{prefix}.rpc.orders.MarkOrderPaid", "orders.MarkOrderPaid")
    granted = assert_reaction(tree, marked, "orders.OrderPaid", "orders.access", "content.GrantAccess")
    tree.child(granted, "handle content.GrantAccess")
