"""Tiers and renewals end to end: HTTP API -> sandbox (its clock) -> signed webhooks -> inbox
-> real worker -> ledger, to the cent."""

from __future__ import annotations

from typing import Any

import pytest

from payments.gateway import gateway_for
from tests.fixtures.live import LiveApp
from tests.integration.subscriptions.helpers import (
    DAY,
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
    sandbox_fee,
    settle,
    subscribe,
)


def paid_invoices(sub: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((i for i in sub["invoices"] if i["status"] == "paid"),
                  key=lambda i: i["period_start"])


def check_booked(live: LiveApp, invoices: list[dict[str, Any]], currency: str) -> int:
    """Each paid invoice is three journals with the sandbox's fee; answers the total net."""
    gw = gateway_for(live.config)
    total = 0
    for inv in invoices:
        gross = inv["amount_paid"]
        pays = gw.list_invoice_payments(inv["id"])["data"]
        pi = gw.retrieve_payment_intent(pays[0]["payment"]["payment_intent"],
                                        expand=["latest_charge.balance_transaction"])
        txn = pi["latest_charge"]["balance_transaction"]
        assert (txn["amount"], txn["fee"]) == (gross, sandbox_fee(gross, currency))
        assert invoice_journals(inv["id"]) == expected_earning(inv["id"], gross, txn["fee"])
        total += net_of(gross, txn["fee"])
    return total


@pytest.mark.parametrize(("currency", "amount", "interval"),
                         [("usd", 1000, "month"), ("jpy", 800, "month"),
                          ("eur", 9900, "year")])
def test_renewals_credit_the_creator_to_the_cent(subs_stack: LiveApp, currency: str,
                                                 amount: int, interval: str) -> None:
    live = subs_stack
    creator = new_creator(live, currency)
    tier = new_tier(live, creator, amount, currency.upper(), interval)
    assert tier["currency"] == currency and tier["active"] and tier["stripe_price"]
    profile = live.call("GET", f"/v1/creators/{creator['handle']}").json()
    assert [t["id"] for t in profile["tiers"]] == [tier["id"]]
    assert "stripe_price" not in profile["tiers"][0]

    fan = new_fan(live)
    sub = subscribe(live, fan, tier)
    assert sub["id"].startswith("sub_") and sub["status"] == "active"
    assert sub["current_period_end"] > sub["current_period_start"]
    settle(live)
    renewals = 3 if interval == "month" else 1
    for _ in range(renewals):
        end = get_sub(live, fan["api_key"], sub["id"])["current_period_end"]
        advance_to(live, end)
        renewed = get_sub(live, fan["api_key"], sub["id"])
        assert renewed["current_period_start"] == end and renewed["status"] == "active"

    seen = get_sub(live, creator["api_key"], sub["id"])
    paid = paid_invoices(seen)
    assert len(paid) == renewals + 1
    assert [i["billing_reason"] for i in paid] == (
        ["subscription_create"] + ["subscription_cycle"] * renewals)
    assert all(i["amount_paid"] == amount for i in paid)
    # Each invoice pays for the period after the one before.
    assert all(a["period_end"] == b["period_start"] for a, b in zip(paid, paid[1:], strict=False))
    net = check_booked(live, paid, currency)
    bal = balances(live, creator["api_key"])[currency]
    assert bal["pending"] + bal["available"] == net
    assert failed_events() == []


def test_trial_then_first_charge(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 700, trial_days=7)
    fan = new_fan(live)
    sub = subscribe(live, fan, tier)
    assert sub["status"] == "trialing" and sub["trial_end"] == sub["current_period_end"]
    settle(live)
    first = get_sub(live, fan["api_key"], sub["id"])
    assert [i["amount_paid"] for i in first["invoices"]] == [0]
    assert balances(live, creator["api_key"]) == {}
    advance_to(live, sub["trial_end"])
    after = get_sub(live, fan["api_key"], sub["id"])
    assert after["status"] == "active"
    paid = [i for i in after["invoices"] if i["amount_paid"] > 0]
    assert len(paid) == 1 and paid[0]["amount_paid"] == 700
    assert paid[0]["period_start"] == sub["trial_end"]
    net = check_booked(live, paid, "usd")
    assert balances(live, creator["api_key"])["usd"]["pending"] == net
    assert failed_events() == []


def test_holds_mature_into_available(subs_stack: LiveApp) -> None:
    """Hold periods follow the sandbox clock: a month on, the first invoice is available."""
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 2500)
    fan = new_fan(live)
    sub = subscribe(live, fan, tier)
    settle(live)
    live.sandbox.advance(8 * DAY)
    settle(live)
    from payments.db import session_scope
    from payments.ledger import service as ledger

    with session_scope() as s:
        assert ledger.mature_due(s, default_hold_days=7, now=live.sandbox.now()) >= 1
    bal = balances(live, creator["api_key"])["usd"]
    inv = get_sub(live, fan["api_key"], sub["id"])["invoices"][0]
    assert bal["available"] == net_of(2500, sandbox_fee(2500, "usd")) and bal["pending"] == 0
    assert inv["amount_paid"] == 2500
