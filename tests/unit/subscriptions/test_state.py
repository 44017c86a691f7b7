"""Subscription state from Stripe objects: newest wins, ties ask Stripe, ends are final;
how an invoice names its subscription and its billing period. No I/O."""

from __future__ import annotations

from typing import Any

from payments.subscriptions import events, service
from payments.subscriptions.models import Subscription


class NoSession:
    def scalar(self, *_: Any) -> None:
        return None

    def flush(self) -> None:
        return None


def stripe_sub(status: str, *, end: int = 2000, cancel: bool = False) -> dict[str, Any]:
    return {"id": "sub_S1", "object": "subscription", "status": status,
            "cancel_at_period_end": cancel, "customer": "cus_1", "latest_invoice": "in_1",
            "items": {"data": [{"id": "si_1", "price": {"id": "price_1"},
                                "current_period_start": end - 1000,
                                "current_period_end": end}]},
            "metadata": {"creatorpay_kind": "subscription", "subscription_id": "sub_ours"}}


def ours() -> Subscription:
    return Subscription(public_id="sub_ours", status="incomplete", stripe_state_at=0,
                        cancel_at_period_end=False, stripe_price_id="price_1", revision=0)


def test_newest_state_wins_whatever_the_order() -> None:
    s: Any = NoSession()
    sub = ours()
    assert service.apply_subscription(s, sub, stripe_sub("active"), 100)
    assert service.apply_subscription(s, sub, stripe_sub("past_due", end=3000), 300)
    assert service.apply_subscription(s, sub, stripe_sub("active"), 200)  # stale: ignored
    assert (sub.status, sub.current_period_end, sub.stripe_state_at) == ("past_due", 3000, 300)
    # The same second as the state held: the caller must ask Stripe.
    assert service.apply_subscription(s, sub, stripe_sub("active", end=3000), 300) is False
    assert sub.status == "past_due"
    service.apply_current(s, sub, stripe_sub("active", end=3000, cancel=True))
    assert (sub.status, sub.cancel_at_period_end) == ("active", True)


def test_an_ended_subscription_never_comes_back() -> None:
    s: Any = NoSession()
    sub = ours()
    canceled = stripe_sub("canceled") | {"ended_at": 150, "canceled_at": 140}
    service.apply_subscription(s, sub, canceled, 150)
    service.apply_current(s, sub, stripe_sub("active"))
    service.apply_subscription(s, sub, stripe_sub("active"), 900)
    assert (sub.status, sub.ended_at) == ("canceled", 150)


def test_invoice_leads_to_its_subscription_in_both_shapes() -> None:
    current = {"object": "invoice", "id": "in_1", "subscription": None,
               "parent": {"type": "subscription_details", "subscription_details": {
                   "subscription": "sub_S1",
                   "metadata": {"creatorpay_kind": "subscription",
                                "subscription_id": "sub_ours"}}}}
    assert service.invoice_subscription_ref(current) == ("sub_ours", "sub_S1")
    assert events._public_id(current) == "sub_ours"
    older = {"object": "invoice", "id": "in_2", "subscription": "sub_S2"}
    assert service.invoice_subscription_ref(older) == (None, "sub_S2")
    foreign = {"object": "invoice", "id": "in_3", "parent": {"subscription_details": {
        "subscription": "sub_X", "metadata": {"creatorpay_kind": "other"}}}}
    assert service.invoice_subscription_ref(foreign) == (None, "sub_X")


def _line(start: int, end: int, proration: bool) -> dict[str, Any]:
    return {"period": {"start": start, "end": end},
            "parent": {"subscription_item_details": {"proration": proration}}}


def test_billing_period_skips_proration_lines() -> None:
    inv = {"lines": {"data": [_line(50, 100, True), _line(100, 200, False)]},
           "period_start": 1, "period_end": 2}
    assert service._invoice_period(inv) == (100, 200)
    only_prorations = {"lines": {"data": [_line(50, 100, True)]}}
    assert service._invoice_period(only_prorations) == (50, 100)
    assert service._invoice_period({"period_start": 1, "period_end": 2}) == (1, 2)


def test_only_paid_invoices_of_ours_are_prefetched() -> None:
    ref = {"parent": {"subscription_details": {"subscription": "sub_S1", "metadata": {
        "creatorpay_kind": "subscription", "subscription_id": "sub_ours"}}}}
    paid = {"object": "invoice", "id": "in_1", "status": "paid", "amount_paid": 500, **ref}
    assert events.invoice_ids("invoice.paid", paid) == ["in_1"]
    assert events.invoice_ids("invoice.finalized", paid) == []
    assert events.invoice_ids("invoice.paid", paid | {"amount_paid": 0}) == []
    assert events.invoice_ids("invoice.paid", paid | {"parent": {}}) == []
