"""A fan disputing a renewal's charge: the dispute reaches the creator's ledger as a tip's
does (kind ``dispute``, per dispute balance transaction: the amount and Stripe's dispute fee
taken from what is still pending for the invoice first; given back if the dispute is won),
in a two-decimal and a zero-decimal currency, delivered duplicated and reordered, and when
the dispute's events come before any of the invoice's."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from payments.gateway import gateway_for, sign_payload
from tests.fixtures.live import LiveApp
from tests.integration.subscriptions.helpers import (
    advance_to,
    balances,
    expected_earning,
    failed_events,
    get_sub,
    invoice_journals,
    net_of,
    new_creator,
    new_fan,
    new_tier,
    settle,
    subscribe,
)
from webhooks.worker import INVOICE_CHARGE_EXPAND


def renewal(live: LiveApp, currency: str, amount: int) -> tuple[dict[str, Any], str, int]:
    """A creator, a fan subscribed and renewed once: (creator, the renewal invoice's id, the
    clock before the renewal)."""
    creator = new_creator(live, currency)
    tier = new_tier(live, creator, amount, currency)
    fan = new_fan(live)
    sub = subscribe(live, fan, tier)
    settle(live)
    return creator, sub["id"], get_sub(live, fan["api_key"], sub["id"])["current_period_end"]


def paying_charge(live: LiveApp, invoice_id: str) -> dict[str, Any]:
    gw = gateway_for(live.config)
    pays = gw.list_invoice_payments(invoice_id, expand=[INVOICE_CHARGE_EXPAND])["data"]
    [charge] = [p["payment"]["payment_intent"]["latest_charge"] for p in pays
                if p["status"] == "paid"]
    txn = gw.retrieve_balance_transaction(charge["balance_transaction"])
    return {"id": charge["id"], "fee": txn["fee"], "gross": txn["amount"]}


def sandbox_events(live: LiveApp, since: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100, "created[gte]": since}
        if after:
            params["starting_after"] = after
        status, page = live.sandbox.api("GET", "/v1/events", params)
        assert status == 200, page
        out.extend(page["data"])
        if not page["has_more"]:
            return out[::-1]
        after = page["data"][-1]["id"]


def deliver(live: LiveApp, event: dict[str, Any]) -> None:
    body = json.dumps(event).encode()
    r = requests.post(live.url + "/webhooks/stripe", data=body, timeout=30, headers={
        "Content-Type": "application/json",
        "Stripe-Signature": sign_payload(body, live.config.stripe_webhook_secrets[0])})
    assert r.status_code == 200, r.text


def dispute_journals(invoice_id: str) -> dict[str, dict[tuple[str, str], int]]:
    return {k: v for k, v in invoice_journals(invoice_id).items()
            if k.startswith("subscription_dispute:")}


def check_dispute(live: LiveApp, creator: dict[str, Any], invoice_id: str,
                  charge: dict[str, Any], dispute: dict[str, Any], currency: str,
                  won: bool) -> None:
    """The invoice booked once, each dispute balance transaction once, the creator's balance
    down by the amount and the dispute fee (or whole again, if won)."""
    journals = invoice_journals(invoice_id)
    earning = expected_earning(invoice_id, charge["gross"], charge["fee"])
    assert {k: journals.get(k) for k in earning} == earning
    earned = net_of(charge["gross"], charge["fee"])
    txns = dispute["balance_transactions"]
    assert len(txns) == (2 if won else 1)
    withdrawn = -txns[0]["net"]
    assert withdrawn == dispute["amount"] + txns[0]["fee"] and txns[0]["fee"] > 0
    from_pending = min(earned, withdrawn)
    want = {f"subscription_dispute:{dispute['id']}:{txns[0]['id']}": {
        ("platform", "stripe_balance"): -withdrawn,
        ("creator", "pending"): from_pending,
        **({("creator", "available"): withdrawn - from_pending}
           if withdrawn > from_pending else {})}}
    if won:
        back = txns[1]["net"]
        assert back == withdrawn
        want[f"subscription_dispute:{dispute['id']}:{txns[1]['id']}"] = {
            ("platform", "stripe_balance"): back, ("creator", "available"): -back}
    assert dispute_journals(invoice_id) == want
    bal = balances(live, creator["api_key"])[currency]
    owed = bal["pending"] + bal["available"]
    # The first invoice (same price, so the same fee) and the renewal, less the dispute.
    assert owed == 2 * earned - (0 if won else withdrawn)
    assert failed_events() == []


@pytest.mark.parametrize(("currency", "amount", "won"),
                         [("usd", 1500, False), ("jpy", 1200, True)])
def test_renewal_dispute_duplicated_and_reordered(subs_stack: LiveApp, currency: str,
                                                 amount: int, won: bool) -> None:
    live = subs_stack
    creator, sub_id, renews_at = renewal(live, currency, amount)
    with live.sandbox.chaos(duplicate_rate=0.5, max_delay_ms=300, shuffle=True, seed=7):
        advance_to(live, renews_at)
        seen = get_sub(live, creator["api_key"], sub_id)
        invoice_id = str(seen["latest_invoice"])
        charge = paying_charge(live, invoice_id)
        dispute = live.sandbox.dispute_charge(charge["id"])
        if won:
            dispute = live.sandbox.close_dispute(dispute["id"], "won")
        settle(live)
    assert dispute["currency"] == currency and dispute["amount"] == amount
    check_dispute(live, creator, invoice_id, charge, dispute, currency, won)


@pytest.mark.parametrize(("currency", "amount"), [("usd", 2500), ("jpy", 900)])
def test_dispute_before_any_invoice_event(subs_stack: LiveApp, currency: str,
                                          amount: int) -> None:
    """The renewal's events held back: the dispute's come first (twice), then every event
    of the renewal newest first, then all of them again."""
    live = subs_stack
    creator, sub_id, renews_at = renewal(live, currency, amount)
    live.sandbox.remove_endpoint(live.endpoint_id)
    since = live.sandbox.now() + 1  # after the subscription's own events
    live.sandbox.advance(renews_at + 60 - since)
    events = sandbox_events(live, since)
    [paid] = [e["data"]["object"] for e in events if e["type"] == "invoice.paid"
              and e["data"]["object"]["billing_reason"] == "subscription_cycle"]
    invoice_id = str(paid["id"])
    charge = paying_charge(live, invoice_id)
    dispute = live.sandbox.dispute_charge(charge["id"])
    dispute = live.sandbox.close_dispute(dispute["id"], "lost")
    events = sandbox_events(live, since)
    disputes = [e for e in events if e["type"].startswith("charge.dispute.")]
    others = [e for e in events if not e["type"].startswith("charge.dispute.")]
    assert len(disputes) == 3 and others
    for event in [*disputes[::-1], *disputes]:
        deliver(live, event)
    settle(live)
    assert len(dispute_journals(invoice_id)) == 1  # booked from the dispute alone
    for event in [*others[::-1], *events]:
        deliver(live, event)
    settle(live)
    check_dispute(live, creator, invoice_id, charge, dispute, currency, won=False)
    assert get_sub(live, creator["api_key"], sub_id)["current_period_start"] == renews_at
