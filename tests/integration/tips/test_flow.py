"""Tips end to end: HTTP API -> sandbox -> signed webhook -> inbox -> worker -> ledger."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import pytest

from payments.money import split_fee
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for


def new_creator(live: LiveApp, currency: str = "usd", **extra: Any) -> dict[str, Any]:
    handle = "c_" + secrets.token_hex(4)
    r = live.call("POST", "/v1/creators", json={
        "handle": handle, "display_name": "Creator " + handle, "email": f"{handle}@example.com",
        "kind": "influencer", "country": "US", "default_currency": currency, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def new_fan(live: LiveApp) -> dict[str, Any]:
    r = live.call("POST", "/v1/fans", json={"email": f"f{secrets.token_hex(3)}@example.com",
                                            "display_name": "Fan Fiona"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def balances(live: LiveApp, key: str) -> dict[str, dict[str, int]]:
    r = live.call("GET", "/v1/creators/me/balance", key)
    assert r.status_code == 200, r.text
    return {b["currency"]: b for b in r.json()["balances"]}


def tip_status(live: LiveApp, key: str, tip_id: str) -> str:
    return str(live.call("GET", f"/v1/tips/{tip_id}", key).json()["status"])


def stripe_fee(live: LiveApp, payment_intent: str) -> tuple[int, int]:
    """(gross, fee) from the charge's balance transaction in the sandbox."""
    from payments.gateway import gateway_for

    gw = gateway_for(live.config)
    pi = gw.retrieve_payment_intent(payment_intent)
    charge = gw.retrieve_charge(pi["latest_charge"])
    txn = gw.retrieve_balance_transaction(charge["balance_transaction"])
    return int(txn["amount"]), int(txn["fee"])


@pytest.mark.parametrize(("currency", "amount"), [("usd", 1500), ("jpy", 2000)])
def test_fan_tip_reaches_the_ledger_to_the_cent(live_stack: LiveApp, currency: str, amount: int) -> None:
    live = live_stack
    creator = new_creator(live, currency)
    fan = new_fan(live)
    r = live.call("POST", "/v1/tips", fan["api_key"], json={
        "creator": creator["handle"], "amount": amount, "currency": currency.upper(),
        "message": "Thanks for the <b>great</b> video!", "payment_method": "pm_card_visa"})
    assert r.status_code == 201, r.text
    tip = r.json()
    assert tip["id"].startswith("tip_") and tip["currency"] == currency
    assert tip["status"] == "succeeded"
    assert tip["message"] == "Thanks for the <b>great</b> video!"  # stored as text, verbatim
    gross, fee = stripe_fee(live, tip["payment_intent"])
    assert gross == amount and fee > 0
    platform_fee, _ = split_fee(amount, Decimal("0.10"))
    expected_net = amount - fee - platform_fee

    wait_for(lambda: balances(live, creator["api_key"]).get(currency, {}).get("pending") == expected_net,
             timeout=30)
    bal = balances(live, creator["api_key"])[currency]
    assert bal == {"currency": currency, "pending": expected_net, "available": 0, "reserved": 0,
                   "in_transit": 0, "paid_out": 0}
    lines = live.call("GET", "/v1/creators/me/ledger", creator["api_key"]).json()["data"]
    amounts = sorted(line["amount"] for line in lines)
    assert amounts == sorted([amount, -fee, -platform_fee])
    # The creator sees the fan's name; the tip reads the same for both parties.
    seen = live.call("GET", f"/v1/tips/{tip['id']}", creator["api_key"]).json()
    assert seen["tipper"]["name"] == "Fan Fiona" and "email" not in seen["tipper"]
    assert live.call("GET", f"/v1/tips/{tip['id']}", fan["api_key"]).json()["status"] == "succeeded"
