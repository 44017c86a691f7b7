"""Tips through the API: validation, declines, 3-D Secure, privacy, refunds, disputes."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from payments.db import db
from payments.ledger import service as ledger
from payments.money import split_fee
from payments.tips.models import Tip
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.tips.test_flow import balances, new_creator, new_fan, stripe_fee

RATE = Decimal("0.10")


def tip_count() -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Tip)) or 0)


def post_tip(live: LiveApp, key: str | None, **body: Any) -> Any:
    return live.call("POST", "/v1/tips", key, json=body)


def ledger_lines(live: LiveApp, key: str) -> list[dict[str, Any]]:
    r = live.call("GET", "/v1/creators/me/ledger?limit=100", key)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def owed(live: LiveApp, key: str, currency: str) -> int:
    b = balances(live, key).get(currency)
    return 0 if b is None else b["pending"] + b["available"] + b["reserved"]


def verify_ledger() -> None:
    with db.session() as session:
        report = ledger.verify(session)
    assert report.ok, report


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"amount": 10}, 400, "amount_too_small", "amount"),
        ({"amount": 10_000_001}, 400, "amount_too_large", "amount"),
        ({"amount": 1500.0}, 400, "invalid_request", "amount"),
        ({"amount": "1500"}, 400, "invalid_request", "amount"),
        ({"amount": -5}, 400, "invalid_request", "amount"),
        ({"amount": 0}, 400, "invalid_request", "amount"),
        ({"currency": "xyz"}, 400, "invalid_request", "currency"),
        ({"message": "x" * 501}, 400, "message_too_long", "message"),
        ({"creator": "nobody_" + "z" * 8}, 404, "creator_not_found", "creator"),
        ({"tip_jar": True}, 400, "invalid_request", "tip_jar"),
    ],
)
def test_bad_tips_are_refused_and_write_nothing(
    live_app: LiveApp, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    creator = new_creator(live_app, min_tip_amount=None) if False else new_creator(live_app)
    fan = new_fan(live_app)
    base = {"creator": creator["handle"], "amount": 500, "currency": "usd",
            "payment_method": "pm_card_visa"}
    before = live_app.sandbox.count("payment_intent")
    r = post_tip(live_app, fan["api_key"], **{**base, **body})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["param"] == param
    assert tip_count() == 0
    assert live_app.sandbox.count("payment_intent") == before


def test_message_of_exactly_500_characters_is_accepted(live_app: LiveApp) -> None:
    creator = new_creator(live_app)
    r = post_tip(live_app, None, creator=creator["id"], amount=500, currency="usd",
                 email="guest@example.com", message="é" * 500)
    assert r.status_code == 201, r.text
    assert r.json()["message"] == "é" * 500
    assert r.json()["status"] == "requires_payment" and r.json()["client_secret"]


def test_guest_needs_an_email_and_other_roles_are_forbidden(live_app: LiveApp) -> None:
    creator = new_creator(live_app)
    r = post_tip(live_app, None, creator=creator["handle"], amount=500, currency="usd")
    assert r.status_code == 400 and r.json()["error"]["code"] == "email_required"
    r = post_tip(live_app, creator["api_key"], creator=creator["handle"], amount=500,
                 currency="usd")
    assert r.status_code == 403
    assert tip_count() == 0


def test_minimum_applies_in_default_currency_only(live_app: LiveApp) -> None:
    creator = new_creator(live_app)
    r = live_app.call("PATCH", "/v1/creators/me", creator["api_key"], json={"min_tip_amount": 300})
    assert r.status_code == 200
    fan = new_fan(live_app)
    r = post_tip(live_app, fan["api_key"], creator=creator["handle"], amount=299, currency="usd")
    assert r.status_code == 400 and r.json()["error"]["code"] == "amount_too_small"
    # In another currency Stripe's minimum charge applies (eur 50).
    r = post_tip(live_app, fan["api_key"], creator=creator["handle"], amount=50, currency="eur")
    assert r.status_code == 201, r.text


def test_declined_card_is_402_and_moves_no_money(live_stack: LiveApp) -> None:
    creator = new_creator(live_stack)
    fan = new_fan(live_stack)
    for pm, decline in (("pm_card_chargeDeclined", "generic_decline"),
                        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds")):
        r = post_tip(live_stack, fan["api_key"], creator=creator["handle"], amount=700,
                     currency="usd", payment_method=pm)
        assert r.status_code == 402, r.text
        err = r.json()["error"]
        assert err["code"] == "card_declined" and err["decline_code"] == decline
        tip = live_stack.call("GET", f"/v1/tips/{err['tip']}", fan["api_key"]).json()
        assert tip["status"] == "failed" and tip["failure_code"] == decline
    live_stack.sandbox.wait_deliveries()
    wait_for(lambda: _inbox_settled(), timeout=20)
    assert owed(live_stack, creator["api_key"], "usd") == 0
    assert ledger_lines(live_stack, creator["api_key"]) == []


def _inbox_settled() -> bool:
    from webhooks.models import RECEIVED, WebhookEvent

    with db.session() as session:
        waiting = session.scalar(
            select(func.count()).select_from(WebhookEvent).where(WebhookEvent.status == RECEIVED))
    return waiting == 0


def test_three_d_secure_needs_the_fan_then_completes(live_stack: LiveApp) -> None:
    creator = new_creator(live_stack)
    fan = new_fan(live_stack)
    r = post_tip(live_stack, fan["api_key"], creator=creator["handle"], amount=1200,
                 currency="usd", payment_method="pm_card_authenticationRequired")
    assert r.status_code == 201, r.text
    tip = r.json()
    assert tip["status"] == "requires_payment"
    assert tip["next_action"] == "use_stripe_sdk" and tip["client_secret"]
    assert owed(live_stack, creator["api_key"], "usd") == 0
    # The fan completes 3-D Secure in Stripe.js; the webhook carries it home.
    live_stack.sandbox.authenticate(tip["payment_intent"], "succeed")
    gross, fee = stripe_fee(live_stack, tip["payment_intent"])
    net = gross - fee - split_fee(gross, RATE)[0]
    wait_for(lambda: owed(live_stack, creator["api_key"], "usd") == net, timeout=30)
    assert live_stack.call("GET", f"/v1/tips/{tip['id']}", fan["api_key"]).json()["status"] == "succeeded"


def test_anonymous_tip_hides_the_tipper_but_keeps_the_message(live_stack: LiveApp) -> None:
    creator = new_creator(live_stack)
    fan = new_fan(live_stack)
    r = post_tip(live_stack, fan["api_key"], creator=creator["handle"], amount=900,
                 currency="usd", payment_method="pm_card_visa", anonymous=True,
                 message="from a secret admirer")
    assert r.status_code == 201, r.text
    tip_id = r.json()["id"]
    seen = live_stack.call("GET", f"/v1/tips/{tip_id}", creator["api_key"]).json()
    assert seen["tipper"] is None and seen["anonymous"] is True
    assert seen["message"] == "from a secret admirer"
    listed = live_stack.call("GET", "/v1/creators/me/tips", creator["api_key"]).json()
    assert [t["id"] for t in listed["data"]] == [tip_id] and listed["data"][0]["tipper"] is None
    assert fan["email"] not in str(listed)
    # The tipper still sees themselves.
    own = live_stack.call("GET", f"/v1/tips/{tip_id}", fan["api_key"]).json()
    assert own["tipper"]["id"] == fan["id"]


def test_a_tip_is_visible_only_to_its_fan_and_creator(live_app: LiveApp) -> None:
    creator = new_creator(live_app)
    other_creator = new_creator(live_app)
    fan, other_fan = new_fan(live_app), new_fan(live_app)
    r = post_tip(live_app, fan["api_key"], creator=creator["handle"], amount=500, currency="usd")
    tip_id = r.json()["id"]
    for key in (other_creator["api_key"], other_fan["api_key"]):
        r = live_app.call("GET", f"/v1/tips/{tip_id}", key)
        assert r.status_code == 404 and r.json()["error"]["code"] == "tip_not_found"
    r = live_app.call("POST", f"/v1/tips/{tip_id}/refund", other_creator["api_key"], json={})
    assert r.status_code == 404
    r = live_app.call("POST", f"/v1/tips/{tip_id}/refund", fan["api_key"], json={})
    assert r.status_code == 403


def _paid_tip(live: LiveApp, amount: int, currency: str = "usd", pm: str = "pm_card_visa",
             settle: bool = True) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    creator = new_creator(live, currency)
    fan = new_fan(live)
    r = post_tip(live, fan["api_key"], creator=creator["handle"], amount=amount,
                 currency=currency, payment_method=pm)
    assert r.status_code == 201, r.text
    tip = r.json()
    gross, fee = stripe_fee(live, tip["payment_intent"])
    net = gross - fee - split_fee(gross, RATE)[0]
    if settle:
        wait_for(lambda: owed(live, creator["api_key"], currency) == net, timeout=30)
    return creator, tip, gross, fee


@pytest.mark.parametrize("currency", ["usd", "jpy"])
def test_partial_then_full_refund(live_stack: LiveApp, currency: str) -> None:
    amount = 2000
    creator, tip, gross, fee = _paid_tip(live_stack, amount, currency)
    key = creator["api_key"]
    net = gross - fee - split_fee(gross, RATE)[0]

    r = live_stack.call("POST", f"/v1/tips/{tip['id']}/refund", key, json={"amount": 2001})
    assert r.status_code == 400 and r.json()["error"]["code"] == "amount_too_large"

    r = live_stack.call("POST", f"/v1/tips/{tip['id']}/refund", key,
                        json={"amount": 500, "reason": "double tap"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "partially_refunded" and r.json()["amount_refunded"] == 500
    platform_back, creator_back = split_fee(500, RATE)
    wait_for(lambda: owed(live_stack, key, currency) == net - creator_back, timeout=30)

    r = live_stack.call("POST", f"/v1/tips/{tip['id']}/refund", key, json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refunded" and r.json()["amount_refunded"] == amount
    rest_platform, rest_creator = split_fee(1500, RATE)
    # Stripe keeps its fee on a refund; the creator bears it, the platform returns its share.
    wait_for(lambda: owed(live_stack, key, currency) == net - creator_back - rest_creator,
             timeout=30)
    assert owed(live_stack, key, currency) == -fee
    r = live_stack.call("POST", f"/v1/tips/{tip['id']}/refund", key, json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_transition"
    verify_ledger()


def test_refund_by_admin(live_stack: LiveApp) -> None:
    from payments.auth import issue_key

    creator, tip, gross, fee = _paid_tip(live_stack, 1000)
    with db.session() as session:
        admin = issue_key(session, "admin", None)
        session.commit()
    r = live_stack.call("POST", f"/v1/tips/{tip['id']}/refund", admin, json={"amount": 1000})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refunded"
    wait_for(lambda: owed(live_stack, creator["api_key"], "usd") == -fee, timeout=30)


@pytest.mark.parametrize("outcome", ["lost", "won"])
def test_dispute_withdraws_amount_and_fee_and_returns_them_if_won(
    live_stack: LiveApp, outcome: str
) -> None:
    creator, tip, gross, fee = _paid_tip(live_stack, 3000, pm="pm_card_createDispute",
                                        settle=False)
    key = creator["api_key"]
    net = gross - fee - split_fee(gross, RATE)[0]
    dispute_fee = 1500
    wait_for(lambda: owed(live_stack, key, "usd") == net - gross - dispute_fee, timeout=30)
    seen = live_stack.call("GET", f"/v1/tips/{tip['id']}", key).json()
    assert seen["status"] == "disputed"
    assert seen["dispute"]["amount"] == gross and seen["dispute"]["id"].startswith("dp_")
    r = live_stack.call("POST", f"/v1/tips/{tip['id']}/refund", key, json={})
    assert r.status_code == 409
    live_stack.sandbox.close_dispute(seen["dispute"]["id"], outcome)
    expected = net if outcome == "won" else net - gross - dispute_fee
    wait_for(lambda: live_stack.call("GET", f"/v1/tips/{tip['id']}", key).json()["dispute"]["status"]
             == outcome, timeout=30)
    wait_for(lambda: owed(live_stack, key, "usd") == expected, timeout=30)
    verify_ledger()


def test_tip_goal_progress_counts_succeeded_tips(live_stack: LiveApp) -> None:
    creator, tip, gross, fee = _paid_tip(live_stack, 1500)
    key = creator["api_key"]
    r = live_stack.call("PATCH", "/v1/creators/me", key,
                        json={"tip_goal": {"amount": 10000, "title": "New camera"}})
    assert r.status_code == 200
    profile = live_stack.call("GET", f"/v1/creators/{creator['handle']}").json()
    goal = profile["tip_settings"]["tip_goal"]
    assert goal == {"amount": 10000, "title": "New camera", "currency": "usd", "progress": 1500}


def test_unique_handles_do_not_collide(live_app: LiveApp) -> None:
    # Sanity for the helpers above: every test makes its own creators.
    a, b = new_creator(live_app), new_creator(live_app)
    assert a["handle"] != b["handle"] and secrets.token_hex(1)
