"""An order's invoice id is the UUIDv5 of the order id: stored invoice streams are named by it, so it never changes
for a given order (a changed namespace or scheme would orphan every stored invoice)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from examples.shop.billing.domain import invoice_id_for


def test_the_invoice_id_of_an_order_is_the_one_stored_invoices_are_named_by() -> None:
    assert invoice_id_for("01a251ac-fab5-7dd7-ada2-a9fc916f5569") == "128225db-f665-592b-b17f-a6847442e7a0"


@given(
    st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    st.text(alphabet=st.characters(exclude_categories=["Cs"])),
)
def test_two_orders_have_the_same_invoice_id_only_when_they_are_the_same_order(first: str, second: str) -> None:
    assert (invoice_id_for(first) == invoice_id_for(second)) == (first == second)
