"""The daily reconciliation against a sandbox of our own (its balance transactions are only
this test's): clean after real tips, a refund and a payout; then a charge the ledger never
heard of and an amount that differs, each named with both sides' ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from payments.auth import issue_key
from payments.db import session_scope
from payments.ledger import service as ledger
from payments.tips.models import Tip
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.payouts.helpers import connect, mature_now, tip
from tests.integration.tips.test_flow import balances, new_creator


def report(live: LiveApp, key: str, day: str) -> dict[str, Any]:
    r = live.call("GET", "/v1/admin/reconciliation", key, params={"date": day})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_clean_day_then_each_difference_named(private_stack: LiveApp) -> None:
    live = private_stack
    with session_scope() as s:
        admin = issue_key(s, "admin", None, label="test")
    day = datetime.fromtimestamp(live.sandbox.now(), UTC).strftime("%Y-%m-%d")
    creator = new_creator(live)
    key = creator["api_key"]
    t1 = tip(live, creator, 5000)
    t2 = tip(live, creator, 3000)
    wait_for(lambda: live.call("GET", f"/v1/tips/{t2['id']}", key).json()["status"]
             == "succeeded", timeout=30)
    assert live.call("POST", f"/v1/tips/{t2['id']}/refund", key,
                     json={"amount": 1000}).status_code == 200
    wait_for(lambda: any(line["kind"] == "refund" for line in live.call(
        "GET", "/v1/creators/me/ledger", key).json()["data"]), timeout=30)
    mature_now(creator, live)
    connect(live, creator)
    po = live.call("POST", "/v1/creators/me/payouts", key, json={"currency": "usd"}).json()
    assert po["status"] == "in_transit"
    assert balances(live, key)["usd"]["in_transit"] == po["amount"]

    clean = report(live, admin, day)
    assert clean["clean"], clean
    assert clean["differences"] == [] and clean["payouts"] == [] and clean["clearing"] == []
    assert clean["balance_transactions"] == 4  # two charges, a refund, a transfer
    assert all(c["difference"] == 0 for c in clean["currencies"])

    # A charge made in Stripe that the ledger never heard of.
    status, intent = live.sandbox.api("POST", "/v1/payment_intents", {
        "amount": 2500, "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true"})
    assert status == 200, intent
    charge_id = intent["latest_charge"]
    # And a journal whose Stripe side says otherwise: 7 more than the charge's net.
    with session_scope() as s:
        t1_charge = s.scalar(select(Tip.charge_id).where(Tip.public_id == t1["id"]))
        assert t1_charge
        ledger.post(s, "test:skew", "adjustment", [
            ledger.debit(ledger.platform_account("stripe_balance", "usd"), 7),
            ledger.credit(ledger.platform_account("platform_revenue", "usd"), 7)],
            source=("charge", t1_charge), effective_at=live.sandbox.now())
    found = report(live, admin, day)
    assert not found["clean"]
    by_problem = {d["problem"]: d for d in found["differences"]}
    assert set(by_problem) == {"missing_in_ledger", "amount_differs"}
    missing = by_problem["missing_in_ledger"]
    assert missing["object"] == charge_id and missing["ledger"] is None
    assert missing["stripe"]["balance_transactions"][0]["source"] == charge_id
    assert missing["stripe"]["balance_transactions"][0]["amount"] == 2500
    differs = by_problem["amount_differs"]
    assert differs["object"] == t1_charge and differs["difference"] == 7
    assert differs["stripe"]["balance_transactions"][0]["balance_transaction"].startswith("txn_")
    assert "test:skew" in differs["ledger"]["keys"]
    assert all(j.startswith("jr_") for j in differs["ledger"]["journals"])
    # What `creatorpay reconcile` prints names the same objects.
    from payments.reconciliation.service import describe

    line = describe(differs)
    assert line.startswith(f"amount_differs {t1_charge} usd: difference 7;")
    txn_id = differs["stripe"]["balance_transactions"][0]["balance_transaction"]
    assert txn_id in line and "test:skew" in line and f"tip {t1['id']}" in line
    assert describe(missing).startswith(f"missing_in_ledger {charge_id} usd:")
    assert describe(missing).endswith("ledger: none")

    # The contract's checks: admin only, a date.
    assert live.call("GET", "/v1/admin/reconciliation", key,
                     params={"date": day}).status_code == 403
    assert live.call("GET", "/v1/admin/reconciliation", admin,
                     params={"date": "2026-02-30"}).status_code == 400
    assert live.call("GET", "/v1/admin/reconciliation", admin).status_code == 400


class Doctored:
    """The real gateway, with Stripe's answer changed: transactions hidden or altered."""

    def __init__(self, real: Any, hide: frozenset[str] = frozenset(),
                 skew: dict[str, int] | None = None) -> None:
        self.real, self.hide, self.skew = real, hide, skew or {}

    def iter_balance_transactions(self, **filters: Any) -> Any:
        for t in self.real.iter_balance_transactions(**filters):
            if t.get("source") in self.hide:
                continue
            if t.get("source") in self.skew:
                extra = self.skew[t["source"]]
                t = {**t, "fee": int(t["fee"]) + extra, "net": int(t["net"]) - extra}
            yield t


def test_every_flow_by_its_stripe_object(private_stack: LiveApp) -> None:
    """A day with tips, two renewals of one price, deal fundings, a deal's and a renewal's
    refunds and a payout is clean;
    Stripe without one renewal's transaction names that invoice's charge (not the other
    renewal of the same amount); a deal charge that Stripe says netted 7 less names the
    deal's charge, its transaction and both funding journals."""
    from payments.deals.models import Deal
    from payments.gateway import gateway_for
    from payments.ledger.models import Journal
    from payments.reconciliation import service as reconciliation
    from payments.subscriptions.models import SubscriptionInvoice
    from tests.integration.deals.helpers import act, funded_deal, new_brand
    from tests.integration.deals.helpers import new_creator as new_kol
    from tests.integration.subscriptions.helpers import (
        advance_to,
        get_sub,
        new_fan,
        new_tier,
        settle,
        subscribe,
    )

    live = private_stack
    with session_scope() as s:
        admin = issue_key(s, "admin", None, label="test")
    creator = new_kol(live)
    key = creator["api_key"]
    tier = new_tier(live, creator, 1500)
    fans = [new_fan(live), new_fan(live)]
    subs = [subscribe(live, fan, tier) for fan in fans]
    settle(live)
    # The renewals: both subscriptions renew in one clock advance, on the day reconciled.
    advance_to(live, max(get_sub(live, f["api_key"], s["id"])["current_period_end"]
                         for f, s in zip(fans, subs, strict=True)))
    day = datetime.fromtimestamp(live.sandbox.now(), UTC).strftime("%Y-%m-%d")
    tip(live, creator, 5000)
    tip(live, creator, 2500)
    brand = new_brand(live)
    deal = funded_deal(live, brand, creator, 20000)
    # Refunds: a deal canceled after funding (its escrow back to the brand) and part of a
    # renewal.
    canceled = funded_deal(live, brand, creator, 8000)
    act(live, brand["api_key"], f"/v1/deals/{canceled['id']}/cancel", {"reason": "stopped"})
    r = live.call("POST", f"/v1/subscriptions/{subs[0]['id']}/refund", key, json={"amount": 500})
    assert r.status_code == 200, r.text
    settle(live)
    mature_now(creator, live)
    connect(live, creator)
    po = live.call("POST", "/v1/creators/me/payouts", key, json={"currency": "usd"}).json()
    assert po["status"] == "in_transit", po
    settle(live)

    with session_scope() as s:
        renewals = [row for row in s.scalars(select(SubscriptionInvoice).where(
            SubscriptionInvoice.billing_reason == "subscription_cycle"))]
        assert len(renewals) == 2 and all(r.charge_id and r.booked for r in renewals)
        renewal = {r.charge_id: r.stripe_invoice_id for r in renewals}
        deal_charge = s.scalar(select(Deal.charge_id).where(Deal.public_id == deal["id"]))
        assert deal_charge

    clean = report(live, admin, day)
    assert clean["clean"], clean
    assert clean["differences"] == [] and clean["payouts"] == [] and clean["clearing"] == []
    # Two renewals, two tips, two deal charges, the deal's and the renewal's refunds, the
    # payout's transfer.
    assert clean["balance_transactions"] == 9
    with session_scope() as s:
        keys = set(s.scalars(select(Journal.key).where(Journal.key.like("%refund:%"))))
    assert {k.split(":")[0] for k in keys} == {"deal_refund", "subscription_refund"}
    assert all(c["difference"] == 0 for c in clean["currencies"])

    real = gateway_for(live.config)
    # Stripe without one of the two renewals (same amount): that one is named, only it.
    gone, kept = sorted(renewal)
    with session_scope() as s:
        found = reconciliation.reconcile(s, Doctored(real, hide=frozenset({gone})), day)
    assert not found["clean"]
    assert len(found["differences"]) == 1, found["differences"]
    missing = found["differences"][0]
    assert missing["problem"] == "missing_in_stripe" and missing["object"] == gone
    assert missing["stripe"] is None
    assert missing["ledger"]["sources"] == [{"type": "invoice", "id": renewal[gone]}]
    assert sorted(missing["ledger"]["keys"]) == [f"invoice:{renewal[gone]}",
                                                 f"invoice:{renewal[gone]}:processor_fee"]
    assert missing["difference"] == missing["ledger"]["amount"] > 0
    assert renewal[kept] not in str(found["differences"])

    # Stripe says the deal's charge netted 7 less (a fee of 7 more) than the ledger booked.
    with session_scope() as s:
        found = reconciliation.reconcile(s, Doctored(real, skew={deal_charge: 7}), day)
    assert len(found["differences"]) == 1, found["differences"]
    differs = found["differences"][0]
    assert differs["problem"] == "amount_differs" and differs["object"] == deal_charge
    assert differs["difference"] == 7
    (txn,) = differs["stripe"]["balance_transactions"]
    assert txn["source"] == deal_charge and txn["balance_transaction"].startswith("txn_")
    assert sorted(differs["ledger"]["keys"]) == [f"deal_fund:{deal['id']}",
                                                 f"deal_fund:{deal['id']}:processor_fee"]
    assert differs["ledger"]["sources"] == [{"type": "deal", "id": deal["id"]}]
    assert differs["ledger"]["amount"] == differs["stripe"]["net"] + 7


def test_a_subscription_payment_and_its_refund_reconcile_by_charge_and_refund(
        private_stack: LiveApp) -> None:
    # Stripe books an invoice's payment under its charge (ch_), not the invoice (in_): the
    # invoice's journals must answer to that charge, and its refund's to the refund (re_).
    from tests.integration.subscriptions.helpers import new_fan, new_tier, settle, subscribe

    live = private_stack
    with session_scope() as s:
        admin = issue_key(s, "admin", None, label="test")
    day = datetime.fromtimestamp(live.sandbox.now(), UTC).strftime("%Y-%m-%d")
    creator = new_creator(live)
    sub = subscribe(live, new_fan(live), new_tier(live, creator, 900))
    settle(live)
    r = live.call("POST", f"/v1/subscriptions/{sub['id']}/refund", creator["api_key"],
                  json={"amount": 300})
    assert r.status_code == 200, r.text
    settle(live)
    assert balances(live, creator["api_key"])["usd"]["pending"] > 0

    found = report(live, admin, day)
    assert found["differences"] == [], found["differences"]
    assert found["clean"], found
    assert found["balance_transactions"] == 2  # the invoice's charge and the refund
    assert all(c["difference"] == 0 for c in found["currencies"])
