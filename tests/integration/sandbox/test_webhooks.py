"""Webhook delivery end to end: signatures, retries, chaos, endpoints."""

from __future__ import annotations

import time
import uuid

from payments.gateway import Gateway
from tests.fixtures.sandbox import SandboxHandle, WebhookReceiver


def pay(gateway: Gateway, amount: int = 1500) -> dict:
    return gateway.create_payment_intent(amount=amount, currency="usd",
                                         metadata={"t": uuid.uuid4().hex},
                                         idempotency_key=uuid.uuid4().hex,
                                         payment_method="pm_card_visa", confirm=True)


def verifier(sandbox: SandboxHandle, *secrets: str) -> Gateway:
    return Gateway(api_key=sandbox.secret_key, api_base=sandbox.base_url,
                   webhook_secrets=list(secrets))


def test_deliveries_are_signed_and_verify(gateway: Gateway, sandbox: SandboxHandle,
                                          webhook_receiver: WebhookReceiver) -> None:
    pi = pay(gateway)
    webhook_receiver.wait_types(pi["id"], "payment_intent.created", "payment_intent.succeeded",
                                "charge.succeeded")
    check = verifier(sandbox, "whsec_rotated_out", webhook_receiver.secret)
    for r in webhook_receiver.accepted():
        event = check.parse_event(r.body, r.headers.get("Stripe-Signature"))
        assert event["object"] == "event" and event["id"].startswith("evt_")
        assert event["data"]["object"]["object"] in {"payment_intent", "charge", "customer",
                                                     "payment_method", "balance_transaction",
                                                     "refund", "dispute", "subscription",
                                                     "invoice", "transfer", "payout", "account",
                                                     "product", "price"}
        assert r.headers["Content-Type"].startswith("application/json")
    succeeded = [e for e in webhook_receiver.events(pi["id"])
                 if e["type"] == "payment_intent.succeeded"][0]
    assert succeeded["data"]["object"]["status"] == "succeeded"
    assert succeeded["data"]["previous_attributes"]["status"] == "requires_confirmation"
    assert succeeded["request"]["idempotency_key"]
    assert succeeded["api_version"]


def test_signature_timestamp_is_wall_clock_even_after_clock_advance(
        gateway: Gateway, sandbox: SandboxHandle, webhook_receiver: WebhookReceiver) -> None:
    sandbox.advance(3 * 86400)
    pi = pay(gateway)
    webhook_receiver.wait_types(pi["id"], "payment_intent.succeeded")
    r = next(r for r in webhook_receiver.accepted() if r.event["data"]["object"]["id"] == pi["id"])
    ts = int(r.headers["Stripe-Signature"].split(",")[0][2:])
    assert abs(ts - time.time()) < 10
    assert r.event["created"] >= sandbox.now() - 10  # the event itself carries sandbox time
    assert r.event["created"] > time.time() + 2 * 86400


def test_wrong_secret_does_not_verify(gateway: Gateway, sandbox: SandboxHandle,
                                      webhook_receiver: WebhookReceiver) -> None:
    pi = pay(gateway)
    webhook_receiver.wait_types(pi["id"], "payment_intent.succeeded")
    r = webhook_receiver.accepted()[0]
    import pytest

    from payments.gateway import WebhookSignatureError
    with pytest.raises(WebhookSignatureError):
        verifier(sandbox, "whsec_wrong").parse_event(r.body, r.headers["Stripe-Signature"])
    with pytest.raises(WebhookSignatureError):
        verifier(sandbox, webhook_receiver.secret).parse_event(
            r.body + b" ", r.headers["Stripe-Signature"])


def test_failing_receiver_gets_retries(gateway: Gateway, sandbox: SandboxHandle,
                                       webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.fail_first = 4
    pi = pay(gateway)
    webhook_receiver.wait_types(pi["id"], "payment_intent.created", "payment_intent.succeeded",
                                "charge.succeeded", timeout=15)
    sandbox.wait_deliveries(endpoint_id=webhook_receiver.endpoint_id)
    failed = [r for r in webhook_receiver.received if r.status >= 500]
    assert len(failed) == 4
    ids = [r.event["id"] for r in webhook_receiver.accepted()]
    assert {r.event["id"] for r in failed} <= set(ids)


def test_chaos_duplicates_and_reorders_but_delivers_everything(
        gateway: Gateway, sandbox: SandboxHandle, webhook_receiver: WebhookReceiver) -> None:
    with sandbox.chaos(duplicate_rate=0.5, max_delay_ms=300, shuffle=True, seed=7):
        pis = [pay(gateway, 1000 + i) for i in range(8)]
        sandbox.wait_deliveries(endpoint_id=webhook_receiver.endpoint_id, timeout=20)
    status, events = sandbox.api("GET", "/v1/events", {"limit": 100})
    ours = {pi["id"] for pi in pis}
    expected = {e["id"] for e in events["data"] if e["data"]["object"]["id"] in ours}
    received = [r.event for r in webhook_receiver.accepted()]
    got = [e["id"] for e in received if e["data"]["object"]["id"] in ours]
    assert expected and expected <= set(got)
    assert len(got) > len(set(got)), "chaos should have produced duplicates"
    creation_order = [e["id"] for e in reversed(events["data"]) if e["id"] in expected]
    arrival_order = list(dict.fromkeys(got))
    assert arrival_order != creation_order, "chaos should have reordered deliveries"


def test_removed_endpoint_gets_nothing(gateway: Gateway, sandbox: SandboxHandle,
                                       webhook_receiver: WebhookReceiver) -> None:
    sandbox.remove_endpoint(webhook_receiver.endpoint_id)
    pi = pay(gateway)
    time.sleep(0.2)
    assert webhook_receiver.events(pi["id"]) == []


def test_enabled_events_filter(gateway: Gateway, sandbox: SandboxHandle,
                               webhook_receiver: WebhookReceiver) -> None:
    sandbox.remove_endpoint(webhook_receiver.endpoint_id)
    ep = sandbox.add_endpoint(webhook_receiver.url, webhook_receiver.secret,
                              enabled_events=["charge.*"])
    try:
        pi = pay(gateway)
        webhook_receiver.wait_types(pi["id"], "charge.succeeded")
        sandbox.wait_deliveries(endpoint_id=ep["id"])
        assert set(webhook_receiver.types(pi["id"])) == {"charge.succeeded"}
    finally:
        sandbox.remove_endpoint(ep["id"])


def test_webhook_stats_and_pending(sandbox: SandboxHandle) -> None:
    stats = sandbox.control("GET", "/webhooks/stats")
    assert {"pending", "endpoints", "chaos"} <= set(stats)
    assert sandbox.pending() >= 0
