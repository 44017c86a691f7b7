"""Subscriptions, invoices and renewals in the sandbox, driven by its clock."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from payments.gateway import CardError, Gateway, GatewayError
from tests.fixtures.sandbox import SandboxHandle, WebhookReceiver

DAY = 86400


def k() -> str:
    return uuid.uuid4().hex


def tier(gateway: Gateway, amount: int = 1000, currency: str = "usd",
         interval: str = "month") -> dict[str, Any]:
    product = gateway.create_product(name=f"Tier {k()[:6]}", idempotency_key=k())
    return gateway.create_price(product=product["id"], unit_amount=amount, currency=currency,
                                interval=interval, idempotency_key=k())  # type: ignore[arg-type]


def fan(gateway: Gateway, card: str = "pm_card_visa") -> tuple[str, str]:
    cus = gateway.create_customer(idempotency_key=k(), email="fan@example.com")
    pm = gateway.attach_payment_method(card, customer=cus["id"])
    gateway.update_customer(cus["id"], default_payment_method=pm["id"])
    return cus["id"], pm["id"]


def invoice_charge(gateway: Gateway, invoice_id: str) -> dict[str, Any]:
    pays = gateway.list_invoice_payments(invoice_id)["data"]
    pi = gateway.retrieve_payment_intent(pays[0]["payment"]["payment_intent"],
                                         expand=["latest_charge.balance_transaction"])
    charge: dict[str, Any] = pi["latest_charge"]
    return charge


def period_end(sub: dict[str, Any]) -> int:
    return int(sub["items"]["data"][0]["current_period_end"])


def test_subscription_pays_first_invoice(gateway: Gateway) -> None:
    price = tier(gateway, 1000)
    cus, pm = fan(gateway)
    sub = gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                      default_payment_method=pm, metadata={"tier": "t1"},
                                      expand=["latest_invoice.payments"])
    assert sub["status"] == "active"
    inv = sub["latest_invoice"]
    assert inv["status"] == "paid" and inv["amount_paid"] == 1000
    assert inv["billing_reason"] == "subscription_create"
    assert inv["parent"]["subscription_details"]["subscription"] == sub["id"]
    assert inv["payments"]["data"][0]["status"] == "paid"
    charge = invoice_charge(gateway, inv["id"])
    assert charge["amount"] == 1000 and charge["balance_transaction"]["fee"] == 59
    item = sub["items"]["data"][0]
    assert item["current_period_end"] > item["current_period_start"]


def test_trial_then_renewal_then_cancel_at_period_end(gateway: Gateway, sandbox: SandboxHandle,
                                                      webhook_receiver: WebhookReceiver) -> None:
    price = tier(gateway, 700)
    cus, _ = fan(gateway)
    sub = gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                      trial_period_days=7, expand=["latest_invoice"])
    assert sub["status"] == "trialing" and sub["trial_end"] == sub["created"] + 7 * DAY
    assert sub["latest_invoice"]["amount_due"] == 0 and sub["latest_invoice"]["status"] == "paid"
    sandbox.advance(7 * DAY + 60)
    sub = gateway.retrieve_subscription(sub["id"], expand=["latest_invoice"])
    assert sub["status"] == "active"
    inv = sub["latest_invoice"]
    assert (inv["status"], inv["amount_paid"], inv["billing_reason"]) == (
        "paid", 700, "subscription_cycle")
    sub = gateway.update_subscription(sub["id"], idempotency_key=k(), cancel_at_period_end=True)
    assert sub["cancel_at_period_end"] and sub["cancel_at"] == period_end(sub)
    sandbox.advance(period_end(sub) - sandbox.now() + 60)
    sub = gateway.retrieve_subscription(sub["id"])
    assert sub["status"] == "canceled" and sub["ended_at"]
    webhook_receiver.wait_types(sub["id"], "customer.subscription.created",
                                "customer.subscription.updated",
                                "customer.subscription.deleted", "invoice.paid",
                                "invoice.payment_succeeded", "invoice.created",
                                "invoice.finalized")


def test_renewals_across_several_periods(gateway: Gateway, sandbox: SandboxHandle) -> None:
    price = tier(gateway, 500, interval="week")
    cus, pm = fan(gateway)
    sub = gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                      default_payment_method=pm)
    first_end = period_end(sub)
    sandbox.advance(3 * 7 * DAY + 60)
    status, invoices = sandbox.api("GET", "/v1/invoices", {"subscription": sub["id"]})
    assert status == 200
    assert [i["status"] for i in invoices["data"]] == ["paid"] * 4
    assert [i["billing_reason"] for i in invoices["data"]][-1] == "subscription_create"
    ends = sorted(i["period_end"] for i in invoices["data"])
    assert ends[0] == first_end
    assert all(b - a == 7 * DAY for a, b in zip(ends, ends[1:], strict=False))


def _renewal_declined(gateway: Gateway, sandbox: SandboxHandle) -> tuple[dict[str, Any], str]:
    """A subscription whose card now declines, advanced past its first renewal; answers it
    and the customer's good payment method."""
    price = tier(gateway, 900)
    cus, pm = fan(gateway)
    sub = gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                      default_payment_method=pm)
    bad = gateway.attach_payment_method("pm_card_chargeCustomerFail", customer=cus)
    gateway.update_subscription(sub["id"], idempotency_key=k(), default_payment_method=bad["id"])
    sandbox.advance(period_end(sub) - sandbox.now() + 60)
    return sub, pm


def test_failed_renewal_retries_then_cancels(gateway: Gateway, sandbox: SandboxHandle,
                                             webhook_receiver: WebhookReceiver) -> None:
    sub, _ = _renewal_declined(gateway, sandbox)
    sub = gateway.retrieve_subscription(sub["id"], expand=["latest_invoice"])
    inv = sub["latest_invoice"]
    assert sub["status"] == "past_due"
    assert inv["status"] == "open" and inv["attempt_count"] == 1 and inv["next_payment_attempt"]
    for _ in range(3):
        sandbox.advance(inv["next_payment_attempt"] - sandbox.now() + 60)
        inv = gateway.retrieve_invoice(inv["id"])
        if inv["next_payment_attempt"] is None:
            break
    assert inv["attempt_count"] == 4
    sub = gateway.retrieve_subscription(sub["id"])
    assert sub["status"] == "canceled"
    webhook_receiver.wait_for(lambda r: len({
        e["id"] for e in r.events(inv["id"]) if e["type"] == "invoice.payment_failed"}) == 4)


def test_failed_renewal_recovers_with_new_card(gateway: Gateway, sandbox: SandboxHandle) -> None:
    sub, pm = _renewal_declined(gateway, sandbox)
    assert gateway.retrieve_subscription(sub["id"])["status"] == "past_due"
    gateway.update_subscription(sub["id"], idempotency_key=k(), default_payment_method=pm)
    inv = gateway.retrieve_subscription(sub["id"], expand=["latest_invoice"])["latest_invoice"]
    sandbox.advance(inv["next_payment_attempt"] - sandbox.now() + 60)
    sub = gateway.retrieve_subscription(sub["id"], expand=["latest_invoice"])
    assert sub["status"] == "active" and sub["latest_invoice"]["status"] == "paid"
    assert sub["latest_invoice"]["attempt_count"] == 2


def test_pay_invoice_now(gateway: Gateway, sandbox: SandboxHandle) -> None:
    sub, pm = _renewal_declined(gateway, sandbox)
    inv = gateway.retrieve_subscription(sub["id"])["latest_invoice"]
    with pytest.raises(CardError):
        gateway.pay_invoice(inv, idempotency_key=k())
    paid = gateway.pay_invoice(inv, idempotency_key=k(), payment_method=pm)
    assert paid["status"] == "paid"
    assert gateway.retrieve_subscription(sub["id"])["status"] == "active"


def test_declined_first_payment_leaves_incomplete(gateway: Gateway, sandbox: SandboxHandle) -> None:
    price = tier(gateway, 900)
    cus, pm = fan(gateway, "pm_card_chargeCustomerFail")
    sub = gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                      default_payment_method=pm, expand=["latest_invoice"])
    assert sub["status"] == "incomplete" and sub["latest_invoice"]["status"] == "open"
    sandbox.advance(24 * 3600)
    assert gateway.retrieve_subscription(sub["id"])["status"] == "incomplete_expired"
    with pytest.raises(CardError):
        gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                    default_payment_method=pm,
                                    payment_behavior="error_if_incomplete")


def test_three_d_secure_subscription(gateway: Gateway, sandbox: SandboxHandle) -> None:
    price = tier(gateway, 900)
    cus, pm = fan(gateway, "pm_card_authenticationRequired")
    sub = gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                      default_payment_method=pm,
                                      expand=["latest_invoice.payments"])
    assert sub["status"] == "incomplete"
    pi_id = sub["latest_invoice"]["payments"]["data"][0]["payment"]["payment_intent"]
    assert gateway.retrieve_payment_intent(pi_id)["status"] == "requires_action"
    sandbox.authenticate(pi_id)
    assert gateway.retrieve_subscription(sub["id"])["status"] == "active"


def test_upgrade_always_invoice_prorates(gateway: Gateway, sandbox: SandboxHandle) -> None:
    basic, premium = tier(gateway, 1000), tier(gateway, 3000)
    cus, pm = fan(gateway)
    sub = gateway.create_subscription(customer=cus, price=basic["id"], idempotency_key=k(),
                                      default_payment_method=pm)
    item = sub["items"]["data"][0]
    start, end = item["current_period_start"], item["current_period_end"]
    sandbox.advance((end - start) // 2)
    sub = gateway.update_subscription(sub["id"], idempotency_key=k(), price=premium["id"],
                                      proration_behavior="always_invoice",
                                      expand=["latest_invoice"])
    inv = sub["latest_invoice"]
    assert inv["billing_reason"] == "subscription_update" and inv["status"] == "paid"
    lines = inv["lines"]["data"]
    credit, debit = lines[0]["amount"], lines[1]["amount"]
    assert credit < 0 < debit
    assert lines[0]["parent"]["subscription_item_details"]["proration"] is True
    remaining = lines[0]["period"]["end"] - lines[0]["period"]["start"]
    assert credit == -round(1000 * remaining / (end - start))
    assert debit == round(3000 * remaining / (end - start))
    assert inv["amount_paid"] == debit + credit
    assert sub["items"]["data"][0]["price"]["id"] == premium["id"]


def test_downgrade_create_prorations_credit_lands_on_next_invoice(
        gateway: Gateway, sandbox: SandboxHandle) -> None:
    basic, premium = tier(gateway, 1000), tier(gateway, 3000)
    cus, pm = fan(gateway)
    sub = gateway.create_subscription(customer=cus, price=premium["id"], idempotency_key=k(),
                                      default_payment_method=pm)
    end = period_end(sub)
    sandbox.advance((end - sub["items"]["data"][0]["current_period_start"]) // 2)
    sub = gateway.update_subscription(sub["id"], idempotency_key=k(), price=basic["id"])
    sandbox.advance(end - sandbox.now() + 60)
    inv = gateway.retrieve_subscription(sub["id"], expand=["latest_invoice"])["latest_invoice"]
    amounts = [line["amount"] for line in inv["lines"]["data"]]
    assert amounts[0] == 1000 and len(amounts) == 3
    assert sum(amounts) < 1000
    assert inv["amount_due"] == max(0, sum(amounts))


def test_cancel_now_and_errors(gateway: Gateway) -> None:
    price = tier(gateway, 900)
    cus, pm = fan(gateway)
    sub = gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                      default_payment_method=pm)
    canceled = gateway.cancel_subscription(sub["id"])
    assert canceled["status"] == "canceled"
    with pytest.raises(GatewayError):
        gateway.cancel_subscription(sub["id"])
    with pytest.raises(GatewayError) as info:
        gateway.create_subscription(customer=cus, price="price_missing", idempotency_key=k())
    assert info.value.code == "resource_missing"
    other, _ = fan(gateway)
    with pytest.raises(GatewayError):  # payment method attached to another customer
        gateway.create_subscription(customer=other, price=price["id"], idempotency_key=k(),
                                    default_payment_method=pm)


def test_zero_decimal_yearly(gateway: Gateway, sandbox: SandboxHandle) -> None:
    price = tier(gateway, 12000, "jpy", "year")
    cus, pm = fan(gateway)
    sub = gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                      default_payment_method=pm, expand=["latest_invoice"])
    charge = invoice_charge(gateway, sub["latest_invoice"]["id"])
    assert charge["currency"] == "jpy"
    assert charge["balance_transaction"]["fee"] == 348 + 40
    assert period_end(sub) - sub["items"]["data"][0]["current_period_start"] in (365 * DAY,
                                                                                366 * DAY)


def test_one_invoices_payments_list_and_expand(gateway: Gateway, sandbox: SandboxHandle) -> None:
    """``GET /v1/invoice_payments?invoice=`` answers that invoice's payments (newest first,
    ``limit`` checked) and expands through to the paying charge."""
    price = tier(gateway, 1200)
    cus, pm = fan(gateway)
    sub = gateway.create_subscription(customer=cus, price=price["id"], idempotency_key=k(),
                                      default_payment_method=pm)
    pays = gateway.list_invoice_payments(
        sub["latest_invoice"], expand=["data.payment.payment_intent.latest_charge"])["data"]
    assert len(pays) == 1 and pays[0]["invoice"] == sub["latest_invoice"]
    charge = pays[0]["payment"]["payment_intent"]["latest_charge"]
    assert charge["amount"] == 1200 and charge["balance_transaction"].startswith("txn_")
    status, body = sandbox.api("GET", "/v1/invoice_payments",
                               {"invoice": sub["latest_invoice"], "limit": 0})
    assert status == 400 and body["error"]["param"] == "limit"
    status, body = sandbox.api("GET", "/v1/invoice_payments", {"invoice": "in_missing"})
    assert status == 200 and body["data"] == []
