"""An order's invoice id is the UUIDv5 of the order id (stored invoice streams are named by it)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from examples.shop.billing.domain import INVOICES_NAMESPACE, invoice_id_for


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])) | st.uuids().map(str))
def test_the_invoice_id_is_uuid5_of_the_order_id(order_id: str) -> None:
    assert invoice_id_for(order_id) == str(uuid.uuid5(INVOICES_NAMESPACE, order_id))
