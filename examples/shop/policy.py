"""Who may do what in the shop, enforced at the bus for every way in (HTTP, CLI, process managers).

anonymous  registers, and browses content items
customer   orders for itself, pays its own invoices, reads its own orders, invoices, access and profile
editor     publishes content
admin      everything: refunds, role assignment, analytics, reading anyone's data
"""

from __future__ import annotations

from citadel.security import Policy
from examples.shop.billing.contract import GetInvoice, PayInvoice
from examples.shop.content.contract import GetAccess, GetItem, PublishContent
from examples.shop.orders.contract import CancelOrder, CreateOrder, GetOrder
from examples.shop.users.contract import GetUser, RegisterUser

__all__ = ["shop_policy"]


def shop_policy() -> Policy:
    """Return the shop's access policy."""
    return (
        Policy(superusers=("admin",))
        .allow("anonymous", RegisterUser, GetItem)
        .allow("customer", CreateOrder, CancelOrder, GetOrder, PayInvoice, GetInvoice, GetAccess, GetUser, own=True)
        .allow("editor", PublishContent)
    )
