"""Connect in the sandbox: Express accounts, onboarding, transfers, reversals, payouts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from payments.gateway import Gateway, GatewayError
from tests.fixtures.sandbox import SandboxHandle, WebhookReceiver

DAY = 86400


def k() -> str:
    return uuid.uuid4().hex


def creator(gateway: Gateway, sandbox: SandboxHandle, country: str = "US",
            onboard: bool = True) -> dict[str, Any]:
    acct = gateway.create_account(idempotency_key=k(), country=country,
                                  email="creator@example.com", metadata={"creator": k()})
    if onboard:
        sandbox.onboard(acct["id"])
    return gateway.retrieve_account(acct["id"])


def test_account_and_onboarding_link(gateway: Gateway, sandbox: SandboxHandle,
                                     webhook_receiver: WebhookReceiver) -> None:
    acct = gateway.create_account(idempotency_key=k(), country="SG", email="c@example.com")
    assert acct["id"].startswith("acct_") and acct["type"] == "express"
    assert acct["default_currency"] == "sgd"
    assert not acct["charges_enabled"] and not acct["payouts_enabled"]
    assert acct["capabilities"] == {"transfers": "inactive"}
    link = gateway.create_account_link(account=acct["id"], refresh_url="http://app/refresh",
                                       return_url="http://app/return")
    assert link["object"] == "account_link" and link["expires_at"] > link["created"]
    path = link["url"][len(sandbox.base_url):]
    status, _ = sandbox.raw("GET", path)
    assert status == 302
    acct = gateway.retrieve_account(acct["id"])
    assert acct["payouts_enabled"] and acct["details_submitted"]
    assert acct["capabilities"]["transfers"] == "active"
    assert acct["external_accounts"]["data"][0]["object"] == "bank_account"
    webhook_receiver.wait_types(acct["id"], "account.updated")
    event = webhook_receiver.events(acct["id"])[0]
    assert event["account"] == acct["id"]
    assert event["data"]["previous_attributes"]["payouts_enabled"] is False


def test_transfer_requires_onboarding_and_balance(gateway: Gateway,
                                                  sandbox: SandboxHandle) -> None:
    pending = creator(gateway, sandbox, onboard=False)
    with pytest.raises(GatewayError) as info:
        gateway.create_transfer(amount=100, currency="usd", destination=pending["id"],
                                idempotency_key=k())
    assert info.value.code == "insufficient_capabilities_for_transfer"
    ready = creator(gateway, sandbox)
    with pytest.raises(GatewayError) as info:
        gateway.create_transfer(amount=10**12, currency="usd", destination=ready["id"],
                                idempotency_key=k())
    assert info.value.code == "balance_insufficient"
    with pytest.raises(GatewayError) as info:
        gateway.create_transfer(amount=100, currency="usd", destination="acct_missing",
                                idempotency_key=k())
    assert info.value.code == "resource_missing" and info.value.param == "destination"


def test_transfer_reversal_and_balances(gateway: Gateway, sandbox: SandboxHandle,
                                        webhook_receiver: WebhookReceiver) -> None:
    acct = creator(gateway, sandbox)
    sandbox.fund(100_000, "usd")
    key = k()
    tr = gateway.create_transfer(amount=2500, currency="usd", destination=acct["id"],
                                 idempotency_key=key, metadata={"payout": "po_1"},
                                 transfer_group="payout-1")
    assert gateway.create_transfer(amount=2500, currency="usd", destination=acct["id"],
                                   idempotency_key=key, metadata={"payout": "po_1"},
                                   transfer_group="payout-1")["id"] == tr["id"]
    bt = gateway.retrieve_balance_transaction(tr["balance_transaction"])
    assert (bt["type"], bt["amount"], bt["fee"]) == ("transfer", -2500, 0)
    bal = gateway.retrieve_balance(stripe_account=acct["id"])
    assert bal["available"] == [{"amount": 2500, "currency": "usd",
                                 "source_types": {"card": 2500}}]
    rev = gateway.create_transfer_reversal(tr["id"], idempotency_key=k(), amount=1000)
    assert rev["amount"] == 1000 and rev["transfer"] == tr["id"]
    tr = gateway.retrieve_transfer(tr["id"])
    assert tr["amount_reversed"] == 1000 and not tr["reversed"]
    with pytest.raises(GatewayError) as info:
        gateway.create_transfer_reversal(tr["id"], idempotency_key=k(), amount=1501)
    assert info.value.code == "amount_too_large"
    gateway.create_transfer_reversal(tr["id"], idempotency_key=k())
    tr = gateway.retrieve_transfer(tr["id"])
    assert tr["reversed"] and tr["amount_reversed"] == 2500
    assert gateway.retrieve_balance(stripe_account=acct["id"])["available"][0]["amount"] == 0
    webhook_receiver.wait_types(tr["id"], "transfer.created", "transfer.reversed")


def test_automatic_payout_arrives_on_clock_advance(gateway: Gateway, sandbox: SandboxHandle,
                                                   webhook_receiver: WebhookReceiver) -> None:
    acct = creator(gateway, sandbox)
    sandbox.fund(50_000, "usd")
    gateway.create_transfer(amount=4000, currency="usd", destination=acct["id"],
                            idempotency_key=k())
    sandbox.advance(DAY + 60)
    status, payouts = sandbox.api("GET", "/v1/payouts", stripe_account=acct["id"])
    assert status == 200
    [po] = payouts["data"]
    assert po["automatic"] and po["amount"] == 4000 and po["status"] in ("pending", "in_transit")
    sandbox.advance(2 * DAY + 60)
    po = gateway.retrieve_payout(po["id"], stripe_account=acct["id"])
    assert po["status"] == "paid"
    webhook_receiver.wait_types(po["id"], "payout.created", "payout.paid")
    paid = [e for e in webhook_receiver.events(po["id"]) if e["type"] == "payout.paid"][0]
    assert paid["account"] == acct["id"]
    txns = gateway.list_balance_transactions(payout=po["id"], stripe_account=acct["id"])
    assert {t["type"] for t in txns["data"]} == {"payment", "payout"}
    assert sum(t["net"] for t in txns["data"]) == 0


def test_manual_payout_and_failure(gateway: Gateway, sandbox: SandboxHandle,
                                   webhook_receiver: WebhookReceiver) -> None:
    acct = creator(gateway, sandbox, country="JP")
    sandbox.fund(100_000, "jpy")
    gateway.create_transfer(amount=30_000, currency="jpy", destination=acct["id"],
                            idempotency_key=k())
    with pytest.raises(GatewayError) as info:
        gateway.create_payout(amount=30_001, currency="jpy", stripe_account=acct["id"],
                              idempotency_key=k())
    assert info.value.code == "balance_insufficient"
    po = gateway.create_payout(amount=20_000, currency="jpy", stripe_account=acct["id"],
                               idempotency_key=k(), metadata={"payout": "1"})
    assert po["status"] == "pending" and not po["automatic"]
    failed = sandbox.fail_payout(po["id"])
    assert failed["status"] == "failed" and failed["failure_code"] == "account_closed"
    bal = gateway.retrieve_balance(stripe_account=acct["id"])
    assert bal["available"][0]["amount"] == 30_000
    webhook_receiver.wait_types(po["id"], "payout.created", "payout.failed")


def test_a_payout_names_the_transfers_it_carried(gateway: Gateway, sandbox: SandboxHandle) -> None:
    """What payouts rely on: the connected account's payout lists, among its balance
    transactions, the ``payment`` of each transfer (source = ``destination_payment``)."""
    acct = creator(gateway, sandbox)
    sandbox.fund(50_000, "usd")
    transfers = [gateway.create_transfer(amount=amount, currency="usd", destination=acct["id"],
                                         idempotency_key=k(), metadata={"creatorpay_kind": "payout"})
                 for amount in (1500, 2500)]
    assert all(t["destination_payment"].startswith("py_") for t in transfers)
    assert all(t["balance_transaction"].startswith("txn_") for t in transfers)
    platform_txn = gateway.retrieve_balance_transaction(transfers[0]["balance_transaction"])
    assert platform_txn["type"] == "transfer" and platform_txn["net"] == -1500
    assert platform_txn["source"] == transfers[0]["id"]
    sandbox.advance(DAY + 60)
    status, payouts = sandbox.api("GET", "/v1/payouts", stripe_account=acct["id"])
    assert status == 200
    [po] = payouts["data"]
    txns = gateway.list_balance_transactions(payout=po["id"], stripe_account=acct["id"])
    sources = {t["source"] for t in txns["data"] if t["type"] == "payment"}
    assert sources == {t["destination_payment"] for t in transfers}
    assert po["amount"] == 4000
