"""The reference application: a small shop of digital content in five modules.

    users      registers customers (unique emails)
    content    publishes items, quotes prices, grants and revokes access
    orders     orders items at catalog prices          depends on users, content
    billing    one invoice per order, payments         depends on orders
    analytics  revenue and orders by status (async)   depends on orders, billing

Money is in cents. ``app`` is built at import without I/O; ``async with app:`` opens ``var/shop.db``.
"""

from __future__ import annotations

from citadel import Application
from citadel.security.encryption import Keyring
from examples.shop import analytics, billing, content, orders, users
from examples.shop.policy import shop_policy

__all__ = ["app", "build_app"]


def build_app(
    store: str = "sqlite:///var/shop.db", *, secure: bool = True, keyring: Keyring | None = None
) -> Application:
    """Return a new shop application on ``store`` (building opens nothing; ``start()`` does).

    ``secure=False`` leaves out the access policy (for tests of the domain that act as nobody in particular);
    ``keyring`` encrypts what it stores (``citadel serve`` gives it one from its settings).
    """
    return Application(
        [users.module(), content.module(), orders.module(), billing.module(), analytics.module()],
        store=store,
        policy=shop_policy() if secure else None,
        keyring=keyring,
    )


app = build_app()
