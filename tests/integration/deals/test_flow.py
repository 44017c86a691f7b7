"""Deals end to end: API -> sandbox -> signed webhooks -> inbox -> worker -> ledger, with the
sandbox clock driving review periods."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from celery.signals import task_postrun

from payments import clock
from payments.money import split_fee
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.deals.helpers import (
    act,
    admin_key,
    assert_escrow_matches_ledger,
    balances,
    funded_deal,
    get_deal,
    new_brand,
    new_creator,
    platform_balance,
    verify_ledger,
    wait_status,
)

RATE = Decimal("0.10")
DAY = 86_400


def stripe_fee(live: LiveApp, payment_intent: str) -> int:
    from payments.gateway import gateway_for

    gw = gateway_for(live.config)
    pi = gw.retrieve_payment_intent(payment_intent)
    charge = gw.retrieve_charge(pi["latest_charge"])
    return int(gw.retrieve_balance_transaction(charge["balance_transaction"])["fee"])


_FINISHED: dict[str, Any] = {}


@task_postrun.connect(weak=False)
def _finished(task_id: str | None = None, retval: Any = None, **_: Any) -> None:
    if task_id:
        _FINISHED[task_id] = retval


def run_auto_approve(live: LiveApp) -> int:
    """What beat runs, sent to the real worker (a thread here) over the real broker; its
    answer is read when the worker reports the task done (no result backend)."""
    import tasks

    clock.invalidate()
    result = tasks.app.send_task("deals.auto_approve")
    wait_for(lambda: result.id in _FINISHED, timeout=30)
    return int(_FINISHED.pop(result.id))


def net(amount: int) -> int:
    return amount - split_fee(amount, RATE)[0]


def path(deal: dict[str, Any], *parts: str) -> str:
    return "/".join([f"/v1/deals/{deal['id']}", *parts])


@pytest.mark.parametrize(("currency", "amounts"), [("usd", (10_000, 20_000, 30_000)),
                                                   ("jpy", (5_000, 7_000, 8_001))])
def test_three_milestones_approved_auto_approved_and_after_changes(
        deal_stack: LiveApp, currency: str, amounts: tuple[int, int, int]) -> None:
    live = deal_stack
    brand, creator = new_brand(live), new_creator(live, currency)
    bk, ck = brand["api_key"], creator["api_key"]
    deal = funded_deal(live, brand, creator, *amounts, currency=currency, review_days=3)
    total = sum(amounts)
    fee = stripe_fee(live, deal["payment_intent"])
    assert deal["amount"] == total and deal["currency"] == currency
    assert deal["escrow"] == {"funded": total, "released": 0, "refunded": 0, "frozen": 0,
                              "remaining": total}
    assert deal["processor_fee"] == {"bearer": "platform", "amount": fee}
    assert_escrow_matches_ledger(deal)
    m1, m2, m3 = (m["id"] for m in deal["milestones"])

    # 1: submitted, approved by the brand.
    act(live, ck, path(deal, "milestones", m1, "submit"),
        {"proof_url": "https://instagram.com/p/abc", "note": "Posted!"})
    deal = act(live, bk, path(deal, "milestones", m1, "approve"))
    ms = deal["milestones"][0]
    assert ms["status"] == "released" and ms["released_by"] == "brand"
    assert ms["platform_fee"] == split_fee(amounts[0], RATE)[0]
    assert ms["creator_amount"] == net(amounts[0])
    assert deal["escrow"]["released"] == amounts[0]
    assert_escrow_matches_ledger(deal)

    # 2: submitted, unanswered; approved once the sandbox clock passes review_days.
    deal = act(live, ck, path(deal, "milestones", m2, "submit"),
               {"proof_url": "https://tiktok.com/@c/video/1"})
    assert deal["milestones"][1]["review_due_at"] == deal["milestones"][1]["submitted_at"] + 3 * DAY
    live.sandbox.advance(2 * DAY)
    assert run_auto_approve(live) == 0  # not yet
    live.sandbox.advance(DAY + 60)
    assert run_auto_approve(live) == 1
    deal = get_deal(live, bk, deal["id"])
    assert deal["milestones"][1]["status"] == "released"
    assert deal["milestones"][1]["released_by"] == "auto"

    # 3: submitted, changes requested, submitted again, approved.
    act(live, ck, path(deal, "milestones", m3, "submit"), {"proof_url": "https://youtu.be/x"})
    deal = act(live, bk, path(deal, "milestones", m3, "request_changes"),
               {"note": "Please show the logo"})
    assert deal["milestones"][2]["status"] == "changes_requested"
    assert deal["milestones"][2]["revision_count"] == 1
    act(live, ck, path(deal, "milestones", m3, "submit"), {"proof_url": "https://youtu.be/y"})
    deal = act(live, bk, path(deal, "milestones", m3, "approve"))

    assert deal["status"] == "completed"
    assert deal["escrow"] == {"funded": total, "released": total, "refunded": 0, "frozen": 0,
                              "remaining": 0}
    assert_escrow_matches_ledger(deal)
    expected = sum(net(a) for a in amounts)
    assert balances(live, ck)[currency]["pending"] == expected
    # The platform bore Stripe's fee; it kept its fees.
    assert platform_balance("processor_fees", currency) == fee
    assert platform_balance("platform_revenue", currency) == -(total - expected)
    actions = [h["action"] for h in deal["history"]]
    assert actions == ["proposed", "accepted", "funding", "funded", "submitted", "approved",
                       "submitted", "auto_approved", "submitted", "changes_requested",
                       "submitted", "approved", "completed"]
    assert deal["history"][1]["actor"] == {"role": "creator", "id": creator["id"]}
    assert deal["history"][5]["actor"] == {"role": "brand", "id": brand["id"]}
    assert deal["history"][9]["note"] == "Please show the logo"
    # The creator reads the same deal.
    assert get_deal(live, ck, deal["id"])["escrow"] == deal["escrow"]
    live.sandbox.wait_deliveries(endpoint_id=live.endpoint_id)
    verify_ledger()


def test_cancel_after_one_release_refunds_the_rest(deal_stack: LiveApp) -> None:
    live = deal_stack
    brand, creator = new_brand(live), new_creator(live)
    bk, ck = brand["api_key"], creator["api_key"]
    deal = funded_deal(live, brand, creator, 12_345, 20_000, 7_655)
    m1 = deal["milestones"][0]["id"]
    act(live, ck, path(deal, "milestones", m1, "submit"), {"proof_url": "https://x.com/s/1"})
    act(live, bk, path(deal, "milestones", m1, "approve"))
    deal = act(live, bk, path(deal, "cancel"), {"reason": "campaign stopped"})
    assert deal["status"] == "canceled"
    assert [m["status"] for m in deal["milestones"]] == ["released", "canceled", "canceled"]
    assert deal["escrow"] == {"funded": 40_000, "released": 12_345, "refunded": 27_655,
                              "frozen": 0, "remaining": 0}
    assert_escrow_matches_ledger(deal)
    (refund,) = deal["refunds"]
    assert refund["amount"] == 27_655 and refund["status"] == "succeeded"
    # The brand is refunded in the sandbox: exactly the unreleased part, once.
    status, page = live.sandbox.api("GET", "/v1/refunds",
                                    {"payment_intent": deal["payment_intent"]})
    assert status == 200
    assert [r["amount"] for r in page["data"]] == [27_655]
    live.sandbox.wait_deliveries(endpoint_id=live.endpoint_id)
    wait_for(lambda: not _waiting_events())
    deal = get_deal(live, ck, deal["id"])
    assert deal["escrow"]["remaining"] == 0 and deal["escrow"]["refunded"] == 27_655
    assert_escrow_matches_ledger(deal)
    assert balances(live, ck)["usd"]["pending"] == net(12_345)
    assert "canceled" in [h["action"] for h in deal["history"]]
    assert deal["history"][-1]["action"] == "refunded"
    # Canceled is final.
    act(live, ck, path(deal, "cancel"), status=409)
    verify_ledger()


def _waiting_events() -> int:
    from sqlalchemy import func, select

    from payments.db import db
    from webhooks.models import WebhookEvent

    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEvent)
                                  .where(WebhookEvent.status != "processed")) or 0)


def test_dispute_freezes_escrow_and_resolves_60_40(deal_stack: LiveApp) -> None:
    live = deal_stack
    brand, creator = new_brand(live), new_creator(live)
    bk, ck = brand["api_key"], creator["api_key"]
    deal = funded_deal(live, brand, creator, 20_000, 30_000, review_days=2)
    m1, m2 = (m["id"] for m in deal["milestones"])
    act(live, ck, path(deal, "milestones", m1, "submit"), {"proof_url": "https://x.com/s/1"})
    act(live, bk, path(deal, "milestones", m1, "approve"))
    act(live, ck, path(deal, "milestones", m2, "submit"), {"proof_url": "https://x.com/s/2"})
    deal = act(live, ck, path(deal, "dispute"), {"reason": "brand keeps moving the goalposts"})
    assert deal["status"] == "disputed"
    assert deal["escrow"]["frozen"] == 30_000 == deal["escrow"]["remaining"]
    assert deal["dispute"]["opened_by"] == "creator"
    # Frozen: no auto-release, no refund, no approval.
    live.sandbox.advance(3 * DAY)
    assert run_auto_approve(live) == 0
    act(live, bk, path(deal, "cancel"), status=409)
    act(live, bk, path(deal, "milestones", m2, "approve"), status=409)
    admin = admin_key()
    bad = live.call("POST", f"/v1/admin/deals/{deal['id']}/resolve", admin,
                    json={"creator_amount": 18_000, "brand_refund_amount": 11_999})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "resolution_mismatch"
    deal = act(live, admin, f"/v1/admin/deals/{deal['id']}/resolve",
               {"creator_amount": 18_000, "brand_refund_amount": 12_000})
    assert deal["status"] == "resolved"
    assert deal["resolution"] == {"creator_amount": 18_000, "brand_refund_amount": 12_000}
    assert deal["escrow"] == {"funded": 50_000, "released": 38_000, "refunded": 12_000,
                              "frozen": 0, "remaining": 0}
    assert_escrow_matches_ledger(deal)
    status, page = live.sandbox.api("GET", "/v1/refunds",
                                    {"payment_intent": deal["payment_intent"]})
    assert [r["amount"] for r in page["data"]] == [12_000]
    assert balances(live, ck)["usd"]["pending"] == net(20_000) + net(18_000)
    # The brand may not resolve its own dispute; resolved is final.
    act(live, bk, f"/v1/admin/deals/{deal['id']}/resolve",
        {"creator_amount": 1, "brand_refund_amount": 0}, status=403)
    act(live, admin, f"/v1/admin/deals/{deal['id']}/resolve",
        {"creator_amount": 0, "brand_refund_amount": 0}, status=409)
    live.sandbox.wait_deliveries(endpoint_id=live.endpoint_id)
    verify_ledger()


def test_chargeback_on_the_funding_payment_freezes_the_deal(deal_stack: LiveApp) -> None:
    live = deal_stack
    brand, creator = new_brand(live), new_creator(live)
    bk, ck = brand["api_key"], creator["api_key"]
    deal = act(live, bk, "/v1/deals", status=201, body={
        "creator": creator["id"], "title": "Chargeback", "brief": "b", "currency": "usd",
        "milestones": [{"title": "t", "platform": "offline", "deliverable": "an appearance",
                        "amount": 25_000, "due_date": "2027-02-01"}]})
    act(live, ck, path(deal, "accept"))
    act(live, bk, path(deal, "fund"), {"payment_method": "pm_card_createDispute"})
    deal = wait_status(live, bk, deal["id"], "disputed")
    assert deal["dispute"]["opened_by"] == "chargeback"
    assert deal["dispute"]["stripe_dispute"].startswith("dp_")
    assert deal["escrow"] == {"funded": 25_000, "released": 0, "refunded": 0,
                              "frozen": 25_000, "remaining": 25_000}
    assert_escrow_matches_ledger(deal)
    # Stripe took the amount and its dispute fee: the platform's clearing holds both.
    wait_for(lambda: platform_balance("refunds_and_disputes", "usd") == 25_000 + 1_500)
    act(live, ck, path(deal, "milestones", deal["milestones"][0]["id"], "submit"),
        {"proof_url": "https://x.com/late"}, status=409)
    deal = act(live, admin_key(), f"/v1/admin/deals/{deal['id']}/resolve",
               {"creator_amount": 0, "brand_refund_amount": 25_000})
    assert deal["status"] == "resolved" and deal["refunds"] == []  # the network refunded
    assert deal["escrow"]["refunded"] == 25_000 and deal["escrow"]["remaining"] == 0
    assert_escrow_matches_ledger(deal)
    assert platform_balance("refunds_and_disputes", "usd") == 1_500  # the fee: a loss
    live.sandbox.wait_deliveries(endpoint_id=live.endpoint_id)
    verify_ledger()


def test_declined_card_funds_nothing(deal_stack: LiveApp) -> None:
    live = deal_stack
    brand, creator = new_brand(live), new_creator(live)
    bk, ck = brand["api_key"], creator["api_key"]
    deal = act(live, bk, "/v1/deals", status=201, body={
        "creator": creator["handle"], "title": "Decline", "brief": "b", "currency": "usd",
        "milestones": [{"title": "t", "platform": "blog", "deliverable": "a review",
                        "amount": 5_000, "due_date": "2027-02-01"}]})
    act(live, ck, path(deal, "accept"))
    r = live.call("POST", path(deal, "fund"), bk,
                  json={"payment_method": "pm_card_chargeDeclined"})
    assert r.status_code == 402 and r.json()["error"]["code"] == "card_declined"
    deal = get_deal(live, bk, deal["id"])
    assert deal["status"] == "funding" and deal["escrow"]["funded"] == 0
    assert deal["failure_code"] == "generic_decline"
    # Paying again with a good card funds it.
    act(live, bk, path(deal, "fund"), {"payment_method": "pm_card_visa"})
    deal = wait_status(live, bk, deal["id"], "funded")
    assert deal["escrow"]["funded"] == 5_000
    time.sleep(0.2)
    assert_escrow_matches_ledger(deal)


@pytest.mark.parametrize("deal_stack", [{"deal_fee_bearer": "creator"}], indirect=True)
def test_stripe_fee_passed_on_to_the_creator(deal_stack: LiveApp) -> None:
    """CREATORPAY_DEAL_FEE_BEARER=creator: each release takes its milestone's share of
    Stripe's fee (allocate(), pro rata); the platform's processor_fees nets to zero."""
    from payments.money import allocate

    live = deal_stack
    brand, creator = new_brand(live), new_creator(live)
    bk, ck = brand["api_key"], creator["api_key"]
    deal = funded_deal(live, brand, creator, 10_000, 20_001)
    fee = stripe_fee(live, deal["payment_intent"])
    assert deal["processor_fee"] == {"bearer": "creator", "amount": fee}
    shares = allocate(fee, [10_000, 20_001])
    assert [m["processor_fee"] for m in deal["milestones"]] == shares
    for m in deal["milestones"]:
        act(live, ck, path(deal, "milestones", m["id"], "submit"), {"proof_url": "https://x.com/a"})
        deal = act(live, bk, path(deal, "milestones", m["id"], "approve"))
    assert deal["status"] == "completed"
    expected = net(10_000) - shares[0] + net(20_001) - shares[1]
    assert [m["creator_amount"] for m in deal["milestones"]] == [
        net(10_000) - shares[0], net(20_001) - shares[1]]
    assert balances(live, ck)["usd"]["pending"] == expected
    assert platform_balance("processor_fees", "usd") == 0
    assert_escrow_matches_ledger(deal)
    verify_ledger()


def test_fund_with_the_same_idempotency_key_pays_once(deal_stack: LiveApp) -> None:
    live = deal_stack
    brand, creator = new_brand(live), new_creator(live)
    bk, ck = brand["api_key"], creator["api_key"]
    deal = act(live, bk, "/v1/deals", status=201, body={
        "creator": creator["handle"], "title": "Once", "brief": "b", "currency": "eur",
        "milestones": [{"title": "t", "platform": "youtube", "deliverable": "a video",
                        "amount": 9_900, "due_date": "2027-03-01"}]})
    act(live, ck, path(deal, "accept"))
    headers = {"Idempotency-Key": "fund-" + deal["id"]}
    first = live.call("POST", path(deal, "fund"), bk, json={"payment_method": "pm_card_visa"},
                      headers=dict(headers))
    again = live.call("POST", path(deal, "fund"), bk, json={"payment_method": "pm_card_visa"},
                      headers=dict(headers))
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    other = live.call("POST", path(deal, "fund"), bk, json={}, headers=dict(headers))
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")
    deal = wait_status(live, bk, deal["id"], "funded")
    assert live.sandbox.count("payment_intent", {"deal_id": deal["id"]}) == 1
    assert deal["escrow"]["funded"] == 9_900
    # Paid: funding again is a state conflict.
    act(live, bk, path(deal, "fund"), {"payment_method": "pm_card_visa"}, status=409)
    assert_escrow_matches_ledger(deal)
