"""The subscription routes as a client sees them: who may do what, bad input, conflicts,
idempotency, refunds and lists."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from payments.auth import issue_key
from payments.db import session_scope
from payments.gateway import gateway_for
from payments.subscriptions.models import Subscription, SubscriptionRefund, Tier
from tests.fixtures.live import LiveApp
from tests.integration.subscriptions.helpers import (
    balances,
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


def counts() -> tuple[int, int, int]:
    with session_scope() as s:
        return tuple(int(s.scalar(select(func.count()).select_from(m)) or 0)  # type: ignore[return-value]
                     for m in (Tier, Subscription, SubscriptionRefund))


def admin_key() -> str:
    with session_scope() as s:
        return issue_key(s, "admin", None, label="subscriptions-test")


def test_authorization(subs_stack: LiveApp) -> None:
    live = subs_stack
    alice, bob = new_creator(live), new_creator(live)
    tier = new_tier(live, alice, 800)
    fan, other_fan = new_fan(live), new_fan(live)
    sub = subscribe(live, fan, tier)
    path = f"/v1/subscriptions/{sub['id']}"
    # Another fan and another creator see nothing of it.
    for key in (other_fan["api_key"], bob["api_key"]):
        r = live.call("GET", path, key)
        assert r.status_code == 404 and r.json()["error"]["code"] == "subscription_not_found"
    r = live.call("POST", path + "/cancel", other_fan["api_key"], json={})
    assert r.status_code == 404
    r = live.call("POST", path + "/change", other_fan["api_key"], json={"tier": tier["id"]})
    assert r.status_code == 404
    # Its creator reads it; only its fan cancels it (the creator's role may not).
    assert live.call("GET", path, alice["api_key"]).status_code == 200
    r = live.call("POST", path + "/cancel", alice["api_key"], json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_role"
    # A fan may not refund; another creator's refund finds nothing.
    assert live.call("POST", path + "/refund", fan["api_key"], json={}).status_code == 403
    assert live.call("POST", path + "/refund", bob["api_key"], json={}).status_code == 404
    # Tiers: only the creator edits theirs; fans create none.
    r = live.call("PATCH", f"/v1/tiers/{tier['id']}", bob["api_key"], json={"name": "Mine"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "tier_not_found"
    assert live.call("POST", "/v1/tiers", fan["api_key"], json={}).status_code == 403
    assert live.call("GET", "/v1/creators/me/subscribers", fan["api_key"]).status_code == 403
    assert live.call("POST", "/v1/subscriptions", alice["api_key"],
                     json={"tier": tier["id"]}).status_code == 403
    assert live.call("GET", path).status_code == 401
    # Subscriber lists are each creator's own.
    mine = live.call("GET", "/v1/creators/me/subscribers", alice["api_key"]).json()
    assert [s["id"] for s in mine["data"]] == [sub["id"]]
    assert live.call("GET", "/v1/creators/me/subscribers", bob["api_key"]).json()["data"] == []
    assert live.call("GET", "/v1/subscriptions", other_fan["api_key"]).json()["data"] == []
    assert [s["id"] for s in live.call("GET", "/v1/subscriptions",
                                       fan["api_key"]).json()["data"]] == [sub["id"]]


@pytest.mark.parametrize(("body", "param"), [
    ({"name": "T", "amount": 10.5, "currency": "usd", "interval": "month"}, "amount"),
    ({"name": "T", "amount": "1000", "currency": "usd", "interval": "month"}, "amount"),
    ({"name": "T", "amount": 0, "currency": "usd", "interval": "month"}, "amount"),
    ({"name": "T", "amount": 1000, "currency": "usd", "interval": "week"}, "interval"),
    ({"name": "T", "amount": 1000, "currency": "kwd", "interval": "month"}, "currency"),
    ({"name": "", "amount": 1000, "currency": "usd", "interval": "month"}, "name"),
    ({"name": "T", "amount": 10, "currency": "usd", "interval": "month"}, "amount"),
    ({"name": "T", "amount": 1000, "currency": "usd", "interval": "month",
      "trial_days": -1}, "trial_days"),
    ({"name": "T", "amount": 1000, "currency": "usd", "interval": "month",
      "max_subscribers": 0}, "max_subscribers"),
    ({"name": "T", "amount": 1000, "currency": "usd", "interval": "month", "x": 1}, "x"),
    ({"amount": 1000, "currency": "usd", "interval": "month"}, "name"),
])
def test_bad_tier_input_writes_nothing(subs_stack: LiveApp, body: dict[str, Any],
                                       param: str) -> None:
    live = subs_stack
    creator = new_creator(live)
    before = counts()
    r = live.call("POST", "/v1/tiers", creator["api_key"], json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"].get("param") == param
    assert counts() == before
    assert live.sandbox.count("product") == 0


def test_bad_subscription_input_writes_nothing(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 800)
    fan = new_fan(live)
    key = fan["api_key"]
    before = counts()
    for body, status, code in (
        ({}, 400, None), ({"tier": tier["id"], "extra": 1}, 400, None),
        ({"tier": 12}, 400, None), ({"tier": "tier_nope"}, 404, "tier_not_found"),
    ):
        r = live.call("POST", "/v1/subscriptions", key, json=body)
        assert r.status_code == status, r.text
        if code:
            assert r.json()["error"]["code"] == code and r.json()["error"]["param"] == "tier"
    r = live.call("POST", "/v1/subscriptions", key, data="tier=x",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    assert counts() == before
    sub = subscribe(live, fan, tier)
    path = f"/v1/subscriptions/{sub['id']}"
    for suffix, body in (("/cancel", {"at_period_end": "yes"}), ("/change", {}),
                         ("/change", {"tier": tier["id"], "x": 1}), ("/resume", {"x": 1})):
        assert live.call("POST", path + suffix, key, json=body).status_code == 400
    r = live.call("POST", path + "/change", key, json={"tier": "tier_nope"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "tier"
    r = live.call("POST", path + "/change", key, json={"tier": tier["id"]})
    assert r.status_code == 409
    # Another creator's tier is not this subscription's to move to.
    other = new_tier(live, new_creator(live), 800)
    r = live.call("POST", path + "/change", key, json={"tier": other["id"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "tier"
    assert get_sub(live, key, sub["id"])["tier"] == tier["id"]


def test_one_live_subscription_per_creator_and_declines(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    basic, plus = new_tier(live, creator, 800), new_tier(live, creator, 1600)
    fan = new_fan(live)
    declined = subscribe(live, fan, basic, "pm_card_chargeDeclined", status=402)
    assert declined["error"]["code"] == "card_declined"
    declined_id = declined["error"]["subscription"]
    assert get_sub(live, fan["api_key"], declined_id)["status"] == "incomplete_expired"
    first = subscribe(live, fan, basic)
    second = subscribe(live, fan, plus, status=409)
    assert second["error"]["code"] == "already_subscribed"
    assert second["error"]["subscription"] == first["id"]
    assert first["id"] in second["error"]["message"]
    settle(live)
    assert failed_events() == []


def test_client_secret_without_payment_method(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 800)
    fan = new_fan(live)
    sub = subscribe(live, fan, tier, payment_method=None)
    assert sub["status"] == "incomplete" and sub["client_secret"].startswith("pi_")
    # The creator never sees the secret.
    assert "client_secret" not in get_sub(live, creator["api_key"], sub["id"])


def test_tier_full_under_concurrent_subscribes(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 800, max_subscribers=2)
    fans = [new_fan(live) for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda f: live.call(
            "POST", "/v1/subscriptions", f["api_key"],
            json={"tier": tier["id"], "payment_method": "pm_card_visa"}), fans))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201, 201, 409, 409, 409, 409], [r.text for r in answers]
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 409} == {"tier_full"}
    assert live.sandbox.count("subscription") == 2
    public = live.call("GET", f"/v1/tiers/{tier['id']}").json()
    assert public["sold_out"] is True


def test_idempotent_subscribe(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 800)
    fan = new_fan(live)
    headers = {"Idempotency-Key": "sub-once"}
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: live.call(
            "POST", "/v1/subscriptions", fan["api_key"], headers=headers,
            json={"tier": tier["id"], "payment_method": "pm_card_visa"}), range(4)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    r = live.call("POST", "/v1/subscriptions", fan["api_key"], headers=headers,
                  json={"tier": tier["id"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_key_reused"
    assert live.sandbox.count("subscription") == 1


def test_tier_changes_keep_existing_subscribers_price(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 800)
    early = subscribe(live, new_fan(live), tier)
    r = live.call("PATCH", f"/v1/tiers/{tier['id']}", creator["api_key"],
                  json={"name": "Gold", "amount": 1200})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Gold" and r.json()["amount"] == 1200
    assert r.json()["stripe_price"] != tier["stripe_price"]
    late = subscribe(live, new_fan(live), tier)
    assert (early["amount"], late["amount"]) == (800, 1200)
    gw = gateway_for(live.config)
    assert gw.client.v1.prices.retrieve(tier["stripe_price"])["active"] is False
    product = gw.client.v1.prices.retrieve(r.json()["stripe_price"])["product"]
    assert gw.client.v1.products.retrieve(product)["name"] == "Gold"
    r = live.call("PATCH", f"/v1/tiers/{tier['id']}", creator["api_key"], json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert live.call("GET", f"/v1/creators/{creator['handle']}").json()["tiers"] == []
    assert subscribe(live, new_fan(live), tier, status=409)["error"]["code"] == "tier_archived"
    r = live.call("PATCH", f"/v1/tiers/{tier['id']}", creator["api_key"], json={"amount": 1.5})
    assert r.status_code == 400


def test_refund_full_and_partial(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 2000)
    fan = new_fan(live)
    sub = subscribe(live, fan, tier)
    settle(live)
    path = f"/v1/subscriptions/{sub['id']}/refund"
    r = live.call("POST", path, creator["api_key"], json={"amount": 500, "reason": "late"},
                  headers={"Idempotency-Key": "r1"})
    assert r.status_code == 200, r.text
    again = live.call("POST", path, creator["api_key"], json={"amount": 500, "reason": "late"},
                      headers={"Idempotency-Key": "r1"})
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    r = live.call("POST", path, creator["api_key"], json={"amount": 1501})
    assert r.status_code == 400 and r.json()["error"]["code"] == "amount_too_large"
    r = live.call("POST", path, admin_key(), json={})
    assert r.status_code == 200, r.text
    settle(live)
    inv = get_sub(live, fan["api_key"], sub["id"])["invoices"][0]
    assert inv["amount_refunded"] == 2000
    r = live.call("POST", path, creator["api_key"], json={})
    assert r.status_code == 409
    journals = invoice_journals(inv["id"])
    refunds = {k: v for k, v in journals.items() if k.startswith("subscription_refund:")}
    assert len(refunds) == 2
    # Stripe keeps its fee, which the creator bears; the platform gives its fee back.
    fee = sandbox_fee(2000, "usd")
    owed = balances(live, creator["api_key"])["usd"]
    assert owed["pending"] + owed["available"] == net_of(2000, fee) - (2000 - 200)
    assert failed_events() == []


def test_subscriber_and_fan_lists_page_by_cursor(subs_stack: LiveApp) -> None:
    live = subs_stack
    creator = new_creator(live)
    tier = new_tier(live, creator, 800)
    subs = [subscribe(live, new_fan(live, f"Fan {i}"), tier) for i in range(3)]
    key = creator["api_key"]
    first = live.call("GET", "/v1/creators/me/subscribers?limit=2", key).json()
    assert [s["id"] for s in first["data"]] == [subs[2]["id"], subs[1]["id"]]
    assert first["has_more"] is True
    assert {s["status"] for s in first["data"]} == {"active"}
    assert all(s["current_period_end"] and s["tier"] == tier["id"] for s in first["data"])
    rest = live.call("GET", f"/v1/creators/me/subscribers?limit=2&starting_after="
                            f"{first['data'][-1]['id']}", key).json()
    assert [s["id"] for s in rest["data"]] == [subs[0]["id"]] and rest["has_more"] is False
    assert live.call("GET", "/v1/creators/me/subscribers?status=canceled",
                     key).json()["data"] == []
    for bad in ("limit=0", "limit=101", "status=nope", "starting_after=sub_nope"):
        r = live.call("GET", f"/v1/creators/me/subscribers?{bad}", key)
        assert r.status_code in (400, 404), (bad, r.text)
