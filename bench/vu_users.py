"""What the virtual users know (imported by ``bench/vu.py`` and the cluster benchmarks): their bearer tokens and
the data file the load generators read, with each phase's payable invoices."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from citadel.security import issue_token

if TYPE_CHECKING:
    from vu_seed import Seed

__all__ = ["mint_tokens", "split_invoices", "write_data_file"]


def split_invoices(seed: Seed, warmup: float, duration: float) -> tuple[list[list[Any]], list[list[Any]]]:
    """Give each phase its own invoices: per customer, the first share of its orders to the warm-up, in
    proportion to the phases' lengths. Returns, per phase, ``[user_index, invoice_id, amount]`` rows ordered
    slot by slot (first invoice of every user, then the second...), so payments spread over the users."""
    share = warmup / (warmup + duration) if warmup + duration else 0.0
    phases: tuple[list[list[Any]], list[list[Any]]] = ([], [])
    slots = max((len(c["orders"]) for c in seed.customers), default=0)
    for slot in range(slots):
        for index, customer in enumerate(seed.customers):
            orders = customer["orders"]
            if slot < len(orders):
                first = round(len(orders) * share)
                _, invoice_id, amount = orders[slot]
                phases[0 if slot < first else 1].append([index, invoice_id, amount])
    return phases


def write_data_file(path: Path, seed: Seed, tokens: list[str], invoices: list[list[Any]]) -> None:
    """Write what shop.lua loads: items (C), users with their token and orders (U), payable invoices (I)."""
    lines = [f"C {item}" for item in seed.items]
    for customer, token in zip(seed.customers, tokens, strict=True):
        orders = ",".join(order_id for order_id, _, _ in customer["orders"])
        lines.append(f"U {customer['user_id']} {token} {orders}")
    lines += [f"I {index} {invoice_id} {amount}" for index, invoice_id, amount in invoices]
    path.write_text("\n".join(lines) + "\n")


def mint_tokens(seed: Seed, secret: str, ttl: float) -> list[str]:
    """An HS256 bearer token, role customer, for every seeded customer (the server verifies with ``secret``)."""
    return [issue_token(secret, c["user_id"], ["customer"], ttl=ttl) for c in seed.customers]
