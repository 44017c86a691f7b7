"""A batch's paid invoices: their paying charges read a page of a hundred at a time (the
invoice payments made around the batch's events), not one Stripe call per invoice; what the
listing misses, or a listing that fails, is fetched invoice by invoice."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from payments.gateway import Gateway, TransientGatewayError
from tests.fixtures.inbox import Stack
from webhooks.worker import INVOICE_CHARGE_EXPAND, LIST_THRESHOLD, StripeReader

N = LIST_THRESHOLD + 5


def paid_first_invoices(gw: Gateway, n: int, tag: str) -> list[str]:
    product = gw.create_product(name=f"Tier {tag}", idempotency_key=f"prod-{tag}")
    price = gw.create_price(product=product["id"], unit_amount=700, currency="usd",
                            interval="month", idempotency_key=f"price-{tag}")
    out = []
    for i in range(n):
        cus = gw.create_customer(idempotency_key=f"cus-{tag}-{i}", email=f"f{i}@example.com")
        pm = gw.attach_payment_method("pm_card_visa", customer=cus["id"])
        sub = gw.create_subscription(
            customer=cus["id"], price=price["id"], idempotency_key=f"sub-{tag}-{i}",
            default_payment_method=pm["id"], payment_behavior="error_if_incomplete",
            off_session=True)
        out.append(str(sub["latest_invoice"]))
    return out


def charge_of(gw: Gateway, invoice_id: str) -> dict[str, Any]:
    pays = gw.list_invoice_payments(invoice_id, expand=[INVOICE_CHARGE_EXPAND])["data"]
    [charge] = [p["payment"]["payment_intent"]["latest_charge"] for p in pays
                if p["status"] == "paid"]
    return dict(charge)


@pytest.mark.parametrize("listing_fails", [False, True])
def test_paid_invoices_charges_are_read_by_page(quiet_stack: Stack, listing_fails: bool
                                                ) -> None:
    gw = quiet_stack.gateway
    invoices = paid_first_invoices(gw, N, f"prefetch-{listing_fails}")
    want = {i: charge_of(gw, i) for i in invoices}
    now = quiet_stack.sandbox.now()
    reader = StripeReader(gw)
    listing = mock.patch.object(
        gw, "list_paid_invoice_payments", autospec=True,
        side_effect=TransientGatewayError("listing down") if listing_fails
        else gw.list_paid_invoice_payments)
    by_id = mock.patch.object(gw, "list_invoice_payments", autospec=True,
                              side_effect=gw.list_invoice_payments)
    with listing as listed, by_id as fetched:
        reader.prefetch_invoices(invoices, (now - 5, now))
        got = {i: reader.invoice_charge(i) for i in invoices}
    assert {i: c["id"] for i, c in got.items()} == {i: c["id"] for i, c in want.items()}
    assert {i: c["balance_transaction"] for i, c in got.items()} == {
        i: c["balance_transaction"] for i, c in want.items()}
    if listing_fails:
        assert listed.call_count == 1
        assert sorted(c.args[0] for c in fetched.call_args_list) == sorted(invoices)
    else:
        assert 1 <= listed.call_count <= 2 and fetched.call_count == 0
    # Their balance transactions were read with them, for the handlers.
    assert all(c["balance_transaction"] in reader.txns for c in got.values())
