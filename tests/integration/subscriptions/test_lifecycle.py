"""Dunning, cancellation, resumption and tier changes, driven by the sandbox clock."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from payments.db import session_scope
from payments.gateway import gateway_for
from payments.sandbox import currency as sandbox_currency
from payments.subscriptions.models import Subscription
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


def stripe_sub(live: LiveApp, sub_id: str) -> dict[str, Any]:
    with session_scope() as s:
        stripe_id = s.scalar(select(Subscription.stripe_subscription_id)
                             .where(Subscription.public_id == sub_id))
    assert stripe_id
    return gateway_for(live.config).retrieve_subscription(stripe_id)


def card_now_declines(live: LiveApp, sub_id: str) -> str:
    """The fan's card starts failing (``pm_card_chargeCustomerFail``); answers the good one."""
    gw = gateway_for(live.config)
    current = stripe_sub(live, sub_id)
    bad = gw.attach_payment_method("pm_card_chargeCustomerFail", customer=current["customer"])
    gw.update_subscription(current["id"], idempotency_key=f"bad-{sub_id}",
                           default_payment_method=bad["id"])
    return str(current["default_payment_method"])


def open_invoice(sub: dict[str, Any]) -> dict[str, Any]:
    return next(i for i in sub["invoices"] if i["status"] == "open")


def test_failed_renewal_then_recovery(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 900)
    fan = new_fan(live)
    sub = subscribe(live, fan, tier)
    good = card_now_declines(live, sub["id"])
    settle(live)
    advance_to(live, sub["current_period_end"])
    seen = get_sub(live, fan["api_key"], sub["id"])
    assert seen["status"] == "past_due"
    failing = open_invoice(seen)
    assert failing["attempt_count"] == 1 and failing["amount_paid"] == 0
    assert list(invoice_journals(failing["id"])) == []
    # The fan fixes the card; Stripe's next retry pays.
    gw = gateway_for(live.config)
    gw.update_subscription(stripe_sub(live, sub["id"])["id"], idempotency_key="fix-" + sub["id"],
                           default_payment_method=good)
    retry_at = gw.retrieve_invoice(failing["id"])["next_payment_attempt"]
    advance_to(live, retry_at)
    seen = get_sub(live, fan["api_key"], sub["id"])
    assert seen["status"] == "active"
    paid = next(i for i in seen["invoices"] if i["id"] == failing["id"])
    assert (paid["status"], paid["amount_paid"], paid["attempt_count"]) == ("paid", 900, 2)
    fee = sandbox_fee(900, "usd")
    assert invoice_journals(paid["id"]) == expected_earning(paid["id"], 900, fee)
    bal = balances(live, creator["api_key"])["usd"]
    assert bal["pending"] + bal["available"] == 2 * net_of(900, fee)
    assert failed_events() == []


def test_failure_until_canceled_and_until_unpaid(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 900)
    gw = gateway_for(live.config)
    for final in ("canceled", "unpaid"):
        live.sandbox.control("POST", "/subscriptions/config", {"final_status": final})
        fan = new_fan(live)
        sub = subscribe(live, fan, tier)
        card_now_declines(live, sub["id"])
        settle(live)
        advance_to(live, sub["current_period_end"])
        failing = open_invoice(get_sub(live, fan["api_key"], sub["id"]))
        for _ in range(3):
            retry_at = gw.retrieve_invoice(failing["id"])["next_payment_attempt"]
            assert get_sub(live, fan["api_key"], sub["id"])["status"] == "past_due"
            advance_to(live, retry_at)
        seen = get_sub(live, fan["api_key"], sub["id"])
        assert seen["status"] == final, seen
        assert next(i for i in seen["invoices"] if i["id"] == failing["id"])["attempt_count"] == 4
        if final == "canceled":
            assert seen["ended_at"] is not None
    live.sandbox.control("POST", "/subscriptions/config", {"final_status": "canceled"})
    # Only the two first invoices were paid.
    bal = balances(live, creator["api_key"])["usd"]
    assert bal["pending"] + bal["available"] == 2 * net_of(900, sandbox_fee(900, "usd"))
    assert failed_events() == []


def test_cancel_at_period_end_resume_and_cancel_now(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 500)
    fan = new_fan(live)
    sub = subscribe(live, fan, tier)
    key = fan["api_key"]
    r = live.call("POST", f"/v1/subscriptions/{sub['id']}/cancel", key, json={})
    assert r.status_code == 200, r.text
    assert r.json()["cancel_at_period_end"] is True and r.json()["status"] == "active"
    again = live.call("POST", f"/v1/subscriptions/{sub['id']}/cancel", key, json={})
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"
    r = live.call("POST", f"/v1/subscriptions/{sub['id']}/resume", key, json={})
    assert r.status_code == 200 and r.json()["cancel_at_period_end"] is False
    assert live.call("POST", f"/v1/subscriptions/{sub['id']}/resume", key,
                     json={}).status_code == 409
    r = live.call("POST", f"/v1/subscriptions/{sub['id']}/cancel", key,
                  json={"at_period_end": True})
    assert r.status_code == 200 and r.json()["cancel_at_period_end"] is True
    settle(live)
    seen = get_sub(live, key, sub["id"])
    assert seen["cancel_at_period_end"] is True and seen["status"] == "active"
    advance_to(live, sub["current_period_end"])
    seen = get_sub(live, key, sub["id"])
    assert seen["status"] == "canceled" and len(seen["invoices"]) == 1
    assert live.call("POST", f"/v1/subscriptions/{sub['id']}/resume", key,
                     json={}).status_code == 409

    # Subscribing again is allowed once the first has ended; cancel this one at once.
    sub2 = subscribe(live, fan, tier)
    r = live.call("POST", f"/v1/subscriptions/{sub2['id']}/cancel", key,
                  json={"at_period_end": False})
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    settle(live)
    assert get_sub(live, key, sub2["id"])["status"] == "canceled"
    assert failed_events() == []


def _update_invoice(live: LiveApp, sub_id: str, key: str) -> dict[str, Any]:
    seen = get_sub(live, key, sub_id)
    return next(i for i in seen["invoices"] if i["billing_reason"] == "subscription_update")


def test_upgrade_and_downgrade_prorate_to_the_cent(subs_stack: LiveApp) -> None:
    live = subs_stack
    gw = gateway_for(live.config)
    creator = new_creator(live)
    basic = new_tier(live, creator, 1000)
    plus = new_tier(live, creator, 3000)
    fan = new_fan(live)
    key = fan["api_key"]
    sub = subscribe(live, fan, basic)
    start, end = sub["current_period_start"], sub["current_period_end"]
    settle(live)
    live.sandbox.advance(10 * DAY)
    r = live.call("POST", f"/v1/subscriptions/{sub['id']}/change", key, json={"tier": plus["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["tier"] == plus["id"] and r.json()["amount"] == 3000
    settle(live)
    up = _update_invoice(live, sub["id"], key)
    stripe_inv = gw.retrieve_invoice(up["id"])
    lines = [line["amount"] for line in stripe_inv["lines"]["data"]]
    changed_at = stripe_inv["lines"]["data"][0]["period"]["start"]
    assert start + 10 * DAY <= changed_at < start + 10 * DAY + 60
    remaining, total = end - changed_at, end - start
    # The sandbox's own proration, recomputed: credit the unused basic time, charge plus's.
    assert sorted(lines) == sorted([-sandbox_currency.prorate(1000, remaining, total),
                                    sandbox_currency.prorate(3000, remaining, total)])
    assert sum(lines) == stripe_inv["total"] == up["amount_paid"] > 0
    fee = sandbox_fee(up["amount_paid"], "usd")
    assert invoice_journals(up["id"]) == expected_earning(up["id"], up["amount_paid"], fee)

    # Downgrade: the unused plus time is a credit larger than the basic remainder, so the
    # invoice is negative: nothing charged now, the credit pays part of the next invoice.
    live.sandbox.advance(15 * DAY)
    r = live.call("POST", f"/v1/subscriptions/{sub['id']}/change", key,
                  json={"tier": basic["id"]})
    assert r.status_code == 200 and r.json()["tier"] == basic["id"], r.text
    settle(live)
    seen = get_sub(live, key, sub["id"])
    down = [i for i in seen["invoices"] if i["billing_reason"] == "subscription_update"
            and i["id"] != up["id"]][0]
    assert -1000 < down["total"] < 0 and down["amount_paid"] == 0
    assert invoice_journals(down["id"]) == {}
    advance_to(live, end)
    seen = get_sub(live, key, sub["id"])
    renewal = next(i for i in seen["invoices"] if i["billing_reason"] == "subscription_cycle")
    assert renewal["amount_paid"] == 1000 + down["total"]
    fee_r = sandbox_fee(renewal["amount_paid"], "usd")
    assert invoice_journals(renewal["id"]) == expected_earning(
        renewal["id"], renewal["amount_paid"], fee_r)
    # What the fan paid in all, less Stripe's and our fees, is what the creator is owed.
    bal = balances(live, creator["api_key"])["usd"]
    paid = [(1000, sandbox_fee(1000, "usd")), (up["amount_paid"], fee),
            (renewal["amount_paid"], fee_r)]
    assert bal["pending"] + bal["available"] == sum(net_of(g, f) for g, f in paid)
    assert failed_events() == []
