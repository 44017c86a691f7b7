"""Every object the sandbox serves carries at least the keys of Stripe's published fixture."""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

import pytest

from payments.gateway import Gateway
from tests.fixtures.sandbox import SandboxHandle, WebhookReceiver

FIXTURES: dict[str, Any] = json.loads(
    resources.files("payments.sandbox").joinpath("fixtures.json").read_text("utf-8"))["resources"]


def k() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def objects(sandbox: SandboxHandle) -> dict[str, dict[str, Any]]:
    gw = Gateway(api_key=sandbox.secret_key, api_base=sandbox.base_url, webhook_secrets=[])
    out: dict[str, dict[str, Any]] = {}
    cus = gw.create_customer(idempotency_key=k(), email="shape@example.com")
    out["customer"] = cus
    pm = gw.attach_payment_method("pm_card_visa", customer=cus["id"])
    out["payment_method"] = pm
    pi = gw.create_payment_intent(amount=2000, currency="usd", metadata={},
                                  idempotency_key=k(), payment_method=pm["id"],
                                  customer=cus["id"], confirm=True)
    out["payment_intent"] = pi
    ch = gw.retrieve_charge(pi["latest_charge"])
    out["charge"] = ch
    out["balance_transaction"] = gw.retrieve_balance_transaction(ch["balance_transaction"])
    out["refund"] = gw.create_refund(payment_intent=pi["id"], idempotency_key=k(), amount=100)
    out["dispute"] = sandbox.dispute_charge(ch["id"])
    out["balance"] = gw.retrieve_balance()
    product = gw.create_product(name="Shape", idempotency_key=k())
    out["product"] = product
    price = gw.create_price(product=product["id"], unit_amount=500, currency="usd",
                            interval="month", idempotency_key=k())
    out["price"] = price
    sub = gw.create_subscription(customer=cus["id"], price=price["id"], idempotency_key=k(),
                                 default_payment_method=pm["id"])
    out["subscription"] = sub
    out["subscription_item"] = sub["items"]["data"][0]
    out["plan"] = sub["items"]["data"][0]["plan"]
    inv = gw.retrieve_invoice(sub["latest_invoice"])
    out["invoice"] = inv
    out["invoice_payment"] = gw.list_invoice_payments(inv["id"])["data"][0]
    acct = gw.create_account(idempotency_key=k(), country="US")
    out["account"] = acct
    out["account_link"] = gw.create_account_link(account=acct["id"], refresh_url="http://x/r",
                                                 return_url="http://x/ret")
    sandbox.onboard(acct["id"])
    sandbox.fund(10_000, "usd")
    tr = gw.create_transfer(amount=1000, currency="usd", destination=acct["id"],
                            idempotency_key=k())
    out["transfer"] = tr
    out["transfer_reversal"] = gw.create_transfer_reversal(tr["id"], idempotency_key=k(),
                                                           amount=100)
    out["payout"] = gw.create_payout(amount=500, currency="usd", stripe_account=acct["id"],
                                     idempotency_key=k())
    out["event"] = gw.list_events(limit=1)["data"][0]
    return out


@pytest.mark.parametrize("resource", sorted(FIXTURES))
def test_top_level_keys_match_fixture(resource: str, objects: dict[str, dict[str, Any]]) -> None:
    obj = objects[resource]
    missing = set(FIXTURES[resource]) - set(obj)
    assert not missing, f"{resource} lacks {sorted(missing)}"
    if "object" in FIXTURES[resource]:
        assert obj["object"] == FIXTURES[resource]["object"]


@pytest.mark.parametrize("resource", ["charge", "invoice", "subscription", "dispute"])
def test_nested_keys_match_fixture(resource: str, objects: dict[str, dict[str, Any]]) -> None:
    fixture, obj = FIXTURES[resource], objects[resource]
    for key, value in fixture.items():
        if isinstance(value, dict) and isinstance(obj.get(key), dict) and value.get(
                "object") != "list":
            assert set(value) <= set(obj[key]) or not obj[key], (resource, key)


def test_event_shape(gateway: Gateway, webhook_receiver: WebhookReceiver) -> None:
    pi = gateway.create_payment_intent(amount=1000, currency="usd", metadata={},
                                       idempotency_key=k(), payment_method="pm_card_visa",
                                       confirm=True)
    webhook_receiver.wait_types(pi["id"], "payment_intent.succeeded")
    event = next(e for e in webhook_receiver.events(pi["id"])
                 if e["type"] == "payment_intent.succeeded")
    assert set(FIXTURES["event"]) <= set(event)
    assert set(event["request"]) == {"id", "idempotency_key"}
    assert set(event["data"]) == {"object", "previous_attributes"}
    assert set(FIXTURES["payment_intent"]) <= set(event["data"]["object"])
