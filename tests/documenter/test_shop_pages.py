"""What the module documentation says about the shop: each claim checked against what the shop's code declares."""

from __future__ import annotations

import re

import pytest

from citadel.documenter import pages
from examples.shop import build_app

SHOP_PAGES = pages(build_app(secure=False))


def canvas_table(module: str) -> dict[str, list[str]]:
    """The canvas table of ``module``'s page: each row's name, with the names its cell lists (in code or links)."""
    rows = re.findall(r"^\| ([^|]+?) \| (.+) \|$", SHOP_PAGES[f"{module}.md"], flags=re.MULTILINE)
    return {name: [code or link for code, link in re.findall(r"`([^`]+)`|\[([^]]+)\]", cell)] for name, cell in rows}


def section(module: str, title: str) -> str:
    """The text of a ``## title`` section of ``module``'s page."""
    page = SHOP_PAGES[f"{module}.md"]
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, flags=re.MULTILINE | re.DOTALL)
    assert found is not None, f"{module}.md has no section {title!r}"
    return found[1]


def test_there_is_a_map_and_a_canvas_per_shop_module() -> None:
    assert sorted(SHOP_PAGES) == [
        "analytics.md",
        "billing.md",
        "content.md",
        "modules.md",
        "orders.md",
        "users.md",
    ]


def test_orders_canvas_lists_its_commands_query_and_dependencies() -> None:
    table = canvas_table("orders")
    assert table["Base package"] == ["examples.shop.orders"]
    assert "CreateOrder" in table["Commands"]
    assert "MarkOrderPaid" in table["Commands"]
    assert table["Queries"] == ["GetOrder"]
    assert table["Depends on"] == ["content", "users"]
    assert table["Used by"] == ["analytics", "billing"]
    assert table["Process managers"] == ["orders.access", "orders.seating"]


def test_billing_canvas_lists_the_orders_events_it_listens_to() -> None:
    listened = canvas_table("billing")["Events listened to"]
    for event in ("orders.OrderCreated", "orders.OrderReserved", "orders.OrderCancelled", "orders.OrderRefused"):
        assert event in listened
    assert "orders.OrderPaid" not in listened  # billing's process manager does not react to it
    assert canvas_table("billing")["Depends on"] == ["orders"]


def test_billing_canvas_names_the_commands_its_process_manager_sends_to_orders() -> None:
    assert canvas_table("billing")["Messages sent"] == ["orders.MarkOrderPaid", "orders.MarkOrderRefunded"]
    managers = section("billing", "Process managers")
    assert "- on `billing.InvoicePaid`: `mark_order_paid` sends `orders.MarkOrderPaid`" in managers
    assert "- on `orders.OrderCreated`: `bill_new_order` sends `billing.OpenInvoice`" in managers


def test_the_queries_a_handler_sends_to_other_modules_are_listed() -> None:
    sent = section("orders", "Messages sent to other modules")
    assert "- `users.GetUser` (query) to [users](users.md), by handler `create_order`" in sent
    assert "- `content.GetPrices` (query) to [content](content.md), by handler `create_order`" in sent


def test_a_command_shows_its_summary_access_and_typed_fields() -> None:
    commands = section("orders", "Commands")
    create = commands.split("### `orders.CreateOrder`", 1)[1].split("###", 1)[0]
    assert "Order items at the catalog's prices (the client sends no prices)." in create
    assert "In the contract." in create
    assert "- `customer_id`: `str`" in create
    assert "- `items`: `list[OrderItem]`" in create
    paid = commands.split("### `orders.MarkOrderPaid`", 1)[1].split("###", 1)[0]
    assert "not served over HTTP; sent by [billing](billing.md) (process manager `billing.invoicing`)" in paid


def test_an_internal_event_and_a_default_are_shown_as_such() -> None:
    events = section("orders", "Events published")
    assert "### `orders.SeatsRequested`\n\nInternal: not in the contract" in events
    assert "- `seated`: `list[str]`, default `list()`" in events


def test_analytics_projections_are_async_and_orders_inline() -> None:
    assert canvas_table("analytics")["Projections"] == ["analytics.OrdersByStatus", "analytics.RevenueTotals"]
    assert "(async)" in SHOP_PAGES["analytics.md"]
    assert "(inline)" not in SHOP_PAGES["analytics.md"]
    assert "| Projections | `orders.OrderSummaries` (inline) |" in SHOP_PAGES["orders.md"]
    assert canvas_table("analytics")["Views"] == ["analytics.order_statuses", "analytics.revenue"]


@pytest.mark.parametrize(
    "edge",
    [
        'm1 ==>|"depends on"| m3',  # billing depends on orders
        'm3 ==>|"depends on"| m2',  # orders depends on content
        'm1 -->|"commands<br/>MarkOrderPaid<br/>MarkOrderRefunded"| m3',
        'm3 -.->|"events<br/>OrderCancelled<br/>OrderCreated<br/>OrderRefused<br/>OrderReserved"| m1',
        'm3 -->|"queries<br/>GetUser"| m4',
    ],
)
def test_the_map_draws_the_shop_dependencies_and_messages(edge: str) -> None:
    map_page = SHOP_PAGES["modules.md"]
    nodes = re.findall(r'^    (m\d+)\["(\w+)"\]$', map_page, flags=re.MULTILINE)
    assert nodes == [("m0", "analytics"), ("m1", "billing"), ("m2", "content"), ("m3", "orders"), ("m4", "users")]
    assert f"\n    {edge}\n" in map_page


def test_the_map_draws_no_dependency_the_shop_does_not_declare() -> None:
    arrows = re.findall(r"^    (m\d) ==>", SHOP_PAGES["modules.md"], flags=re.MULTILINE)
    assert sorted(arrows) == ["m0", "m0", "m1", "m3", "m3"]  # analytics 2, billing 1, orders 2; content, users 0


def test_the_map_table_lists_who_sends_each_message() -> None:
    row = "| [billing](billing.md) | [orders](orders.md) | command | `orders.MarkOrderPaid` | process manager "
    assert row + "`billing.invoicing` |" in SHOP_PAGES["modules.md"]


def test_two_builds_of_the_shop_give_the_same_pages() -> None:
    assert pages(build_app(secure=False)) == SHOP_PAGES
