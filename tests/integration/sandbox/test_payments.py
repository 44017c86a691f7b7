"""Payments against the sandbox over HTTP through the real StripeClient."""

from __future__ import annotations

import uuid

import pytest

from payments.gateway import CardError, Gateway, GatewayError
from tests.fixtures.sandbox import SandboxHandle


def key(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def pay(gateway: Gateway, amount: int = 1500, currency: str = "usd",
        pm: str = "pm_card_visa", **kw: object) -> dict:
    return gateway.create_payment_intent(amount=amount, currency=currency,
                                         metadata={"test": key()}, idempotency_key=key("tip"),
                                         payment_method=pm, confirm=True, **kw)  # type: ignore[arg-type]


def test_customer_create_retrieve_update(gateway: Gateway) -> None:
    cus = gateway.create_customer(idempotency_key=key("cus"), email="fan@example.com",
                                  name="Fan", metadata={"fan_id": "1"})
    assert cus["id"].startswith("cus_") and cus["object"] == "customer"
    assert gateway.retrieve_customer(cus["id"])["email"] == "fan@example.com"
    pm = gateway.attach_payment_method("pm_card_visa", customer=cus["id"])
    assert pm["id"].startswith("pm_") and pm["customer"] == cus["id"]
    updated = gateway.update_customer(cus["id"], default_payment_method=pm["id"])
    assert updated["invoice_settings"]["default_payment_method"] == pm["id"]


def test_payment_succeeds_with_exact_fee_usd(gateway: Gateway) -> None:
    pi = pay(gateway, 1500, expand=["latest_charge.balance_transaction"])
    assert pi["status"] == "succeeded" and pi["amount_received"] == 1500
    ch = pi["latest_charge"]
    assert ch["status"] == "succeeded" and ch["captured"] and ch["paid"]
    bt = ch["balance_transaction"]
    # 2.9% of 1500 = 43.5 -> 44 (half up) + 30
    assert (bt["amount"], bt["fee"], bt["net"]) == (1500, 74, 1426)
    assert bt["fee_details"] == [{"amount": 74, "application": None, "currency": "usd",
                                  "description": "Stripe processing fees",
                                  "type": "stripe_fee"}]
    assert bt["type"] == "charge" and bt["source"] == ch["id"]
    assert bt["available_on"] > bt["created"] and bt["status"] == "pending"


def test_payment_fee_zero_decimal_currency(gateway: Gateway) -> None:
    pi = pay(gateway, 1000, "JPY", expand=["latest_charge.balance_transaction"])
    bt = pi["latest_charge"]["balance_transaction"]
    assert bt["currency"] == "jpy"
    assert (bt["amount"], bt["fee"], bt["net"]) == (1000, 69, 931)  # 29 + 40


def test_retrieve_charge_and_balance_transaction(gateway: Gateway) -> None:
    pi = pay(gateway)
    ch = gateway.retrieve_charge(pi["latest_charge"])
    bt = gateway.retrieve_balance_transaction(ch["balance_transaction"])
    assert bt["source"] == ch["id"]
    expanded = gateway.retrieve_payment_intent(pi["id"], expand=["latest_charge"])
    assert expanded["latest_charge"]["id"] == ch["id"]


def test_generic_decline(gateway: Gateway) -> None:
    with pytest.raises(CardError) as info:
        pay(gateway, pm="pm_card_chargeDeclined")
    err = info.value
    assert (err.code, err.decline_code, err.http_status) == ("card_declined", "generic_decline",
                                                            402)
    assert err.payment_intent is not None
    assert err.payment_intent["status"] == "requires_payment_method"
    assert err.payment_intent["last_payment_error"]["decline_code"] == "generic_decline"
    failed = gateway.retrieve_charge(err.payment_intent["latest_charge"])
    assert failed["status"] == "failed" and failed["balance_transaction"] is None


def test_insufficient_funds_decline(gateway: Gateway) -> None:
    with pytest.raises(CardError) as info:
        pay(gateway, pm="pm_card_chargeDeclinedInsufficientFunds")
    assert info.value.code == "card_declined"
    assert info.value.decline_code == "insufficient_funds"


def test_three_d_secure_requires_action_then_succeeds(gateway: Gateway,
                                                       sandbox: SandboxHandle) -> None:
    pi = pay(gateway, pm="pm_card_authenticationRequired")
    assert pi["status"] == "requires_action"
    assert pi["next_action"]["type"] == "use_stripe_sdk"
    done = sandbox.authenticate(pi["id"])
    assert done["status"] == "succeeded"
    assert gateway.retrieve_payment_intent(pi["id"])["status"] == "succeeded"


def test_three_d_secure_failed_authentication(gateway: Gateway, sandbox: SandboxHandle) -> None:
    pi = pay(gateway, pm="pm_card_authenticationRequired")
    failed = sandbox.authenticate(pi["id"], "fail")
    assert failed["status"] == "requires_payment_method"


def test_three_d_secure_off_session_is_declined(gateway: Gateway) -> None:
    with pytest.raises(CardError) as info:
        pay(gateway, pm="pm_card_authenticationRequired", off_session=True)
    assert info.value.decline_code == "authentication_required"


def test_manual_capture_partial(gateway: Gateway) -> None:
    pi = pay(gateway, 1000, capture_method="manual")
    assert pi["status"] == "requires_capture" and pi["amount_capturable"] == 1000
    ch = gateway.retrieve_charge(pi["latest_charge"])
    assert not ch["captured"] and ch["balance_transaction"] is None
    with pytest.raises(GatewayError) as info:
        gateway.capture_payment_intent(pi["id"], idempotency_key=key(), amount_to_capture=1001)
    assert info.value.http_status == 400
    captured = gateway.capture_payment_intent(pi["id"], idempotency_key=key(),
                                              amount_to_capture=600)
    assert captured["status"] == "succeeded" and captured["amount_received"] == 600
    ch = gateway.retrieve_charge(pi["latest_charge"], expand=["balance_transaction"])
    assert ch["amount_captured"] == 600 and ch["captured"]
    assert ch["balance_transaction"]["amount"] == 600
    assert ch["balance_transaction"]["fee"] == 47  # 17.4 -> 17 + 30


def test_cancel_payment_intent(gateway: Gateway) -> None:
    pi = gateway.create_payment_intent(amount=800, currency="usd", metadata={},
                                       idempotency_key=key())
    assert pi["status"] == "requires_payment_method" and pi["client_secret"]
    canceled = gateway.cancel_payment_intent(pi["id"], idempotency_key=key())
    assert canceled["status"] == "canceled" and canceled["cancellation_reason"]
    with pytest.raises(GatewayError) as info:
        gateway.cancel_payment_intent(pi["id"], idempotency_key=key())
    assert info.value.code == "payment_intent_unexpected_state"


def test_cancel_uncaptured_releases(gateway: Gateway) -> None:
    pi = pay(gateway, 900, capture_method="manual")
    gateway.cancel_payment_intent(pi["id"], idempotency_key=key())
    with pytest.raises(GatewayError) as info:
        gateway.create_refund(payment_intent=pi["id"], idempotency_key=key())
    assert info.value.code == "charge_not_refundable"


def test_refunds_partial_full_and_never_more_than_captured(gateway: Gateway) -> None:
    pi = pay(gateway, 2000)
    r1 = gateway.create_refund(payment_intent=pi["id"], idempotency_key=key(), amount=500,
                               reason="requested_by_customer", metadata={"tip": "1"})
    assert r1["status"] == "succeeded" and r1["amount"] == 500 and r1["charge"] == pi[
        "latest_charge"]
    bt = gateway.retrieve_balance_transaction(r1["balance_transaction"])
    assert (bt["type"], bt["amount"], bt["fee"], bt["net"]) == ("refund", -500, 0, -500)
    with pytest.raises(GatewayError) as info:
        gateway.create_refund(payment_intent=pi["id"], idempotency_key=key(), amount=1501)
    assert info.value.code == "amount_too_large" and info.value.http_status == 400
    r2 = gateway.create_refund(payment_intent=pi["id"], idempotency_key=key())
    assert r2["amount"] == 1500
    ch = gateway.retrieve_charge(pi["latest_charge"])
    assert ch["refunded"] and ch["amount_refunded"] == 2000
    with pytest.raises(GatewayError) as info:
        gateway.create_refund(payment_intent=pi["id"], idempotency_key=key(), amount=1)
    assert info.value.code == "charge_already_refunded"


def test_dispute_auto_created_and_won(gateway: Gateway, sandbox: SandboxHandle) -> None:
    pi = pay(gateway, 5000, pm="pm_card_createDispute")
    charge_id = pi["latest_charge"]

    def find() -> dict | None:
        status, page = sandbox.api("GET", "/v1/disputes", {"charge": charge_id})
        assert status == 200
        return page["data"][0] if page["data"] else None

    dispute = sandbox.wait_for(find)
    dp = gateway.retrieve_dispute(dispute["id"])
    assert dp["status"] == "needs_response" and dp["amount"] == 5000
    [withdrawal] = dp["balance_transactions"]
    assert (withdrawal["amount"], withdrawal["fee"], withdrawal["net"]) == (-5000, 1500, -6500)
    assert withdrawal["reporting_category"] == "dispute"
    assert gateway.retrieve_charge(charge_id)["disputed"]
    with pytest.raises(GatewayError) as info:
        gateway.create_refund(payment_intent=pi["id"], idempotency_key=key())
    assert info.value.code == "charge_disputed"
    won = sandbox.close_dispute(dp["id"], "won")
    assert won["status"] == "won"
    reinstated = won["balance_transactions"][1]
    assert (reinstated["amount"], reinstated["fee"], reinstated["net"]) == (5000, -1500, 6500)
    with pytest.raises(AssertionError):
        sandbox.close_dispute(dp["id"], "lost")


def test_dispute_lost_zero_decimal(gateway: Gateway, sandbox: SandboxHandle) -> None:
    pi = pay(gateway, 3000, "jpy")
    dp = sandbox.dispute_charge(pi["latest_charge"])
    assert dp["balance_transactions"][0]["fee"] == 2000
    lost = sandbox.close_dispute(dp["id"], "lost")
    assert lost["status"] == "lost" and len(lost["balance_transactions"]) == 1


def test_unknown_ids_are_resource_missing(gateway: Gateway) -> None:
    for call in (lambda: gateway.retrieve_charge("ch_missing"),
                 lambda: gateway.retrieve_payment_intent("pi_missing"),
                 lambda: gateway.retrieve_dispute("dp_missing"),
                 lambda: gateway.retrieve_balance_transaction("txn_missing")):
        with pytest.raises(GatewayError) as info:
            call()
        assert info.value.code == "resource_missing" and info.value.http_status == 404


def test_unknown_customer_param(gateway: Gateway) -> None:
    with pytest.raises(GatewayError) as info:
        gateway.create_payment_intent(amount=1000, currency="usd", metadata={},
                                      idempotency_key=key(), customer="cus_missing")
    assert (info.value.code, info.value.param) == ("resource_missing", "customer")


def test_amount_too_small_and_bad_currency(gateway: Gateway) -> None:
    with pytest.raises(GatewayError) as info:
        gateway.create_payment_intent(amount=10, currency="usd", metadata={},
                                      idempotency_key=key())
    assert info.value.code == "amount_too_small"
    with pytest.raises(GatewayError) as info:
        gateway.create_payment_intent(amount=1000, currency="xyz", metadata={},
                                      idempotency_key=key())
    assert info.value.param == "currency"


def test_idempotent_replay_and_reuse(gateway: Gateway, sandbox: SandboxHandle) -> None:
    k = key("tip")
    marker = key("m")
    first = gateway.create_payment_intent(amount=1200, currency="usd", metadata={"m": marker},
                                          idempotency_key=k, payment_method="pm_card_visa",
                                          confirm=True)
    again = gateway.create_payment_intent(amount=1200, currency="usd", metadata={"m": marker},
                                          idempotency_key=k, payment_method="pm_card_visa",
                                          confirm=True)
    assert again == first
    assert sandbox.count("payment_intent", {"m": marker}) == 1
    assert sandbox.count("charge", {"m": marker}) == 1
    with pytest.raises(GatewayError) as info:
        gateway.create_payment_intent(amount=1300, currency="usd", metadata={"m": marker},
                                      idempotency_key=k)
    assert info.value.code == "idempotency_error" and info.value.http_status == 400


def test_declines_replay_too(gateway: Gateway, sandbox: SandboxHandle) -> None:
    k, marker = key(), key("m")
    for _ in range(2):
        with pytest.raises(CardError):
            gateway.create_payment_intent(amount=1200, currency="usd", metadata={"m": marker},
                                          idempotency_key=k,
                                          payment_method="pm_card_chargeDeclined", confirm=True)
    assert sandbox.count("payment_intent", {"m": marker}) == 1


def test_raw_conventions(sandbox: SandboxHandle) -> None:
    status, body = sandbox.api("GET", "/v1/customers", key="sk_live_nope")
    assert status == 401 and body["error"]["type"] == "invalid_request_error"
    status, body = sandbox.api("GET", "/v1/customers", key="")
    assert status == 401
    status, body = sandbox.api("POST", "/v1/customers", {"bogus": "1"})
    assert status == 400 and body["error"]["code"] == "parameter_unknown"
    assert body["error"]["param"] == "bogus"
    status, body = sandbox.api("GET", "/v1/nothing_here")
    assert status == 404 and "Unrecognized request URL" in body["error"]["message"]
    status, body = sandbox.api("POST", "/v1/payment_intents", {"currency": "usd"})
    assert status == 400 and body["error"]["code"] == "parameter_missing"
    status, body = sandbox.api("POST", "/v1/payment_intents", {"amount": "12.5", "currency": "usd"})
    assert status == 400 and body["error"]["param"] == "amount"


def test_unrecognized_urls_answer_like_stripe(sandbox: SandboxHandle) -> None:
    status, body = sandbox.api("GET", "/v1/nothing_here")
    assert status == 404 and body["error"] == {
        "type": "invalid_request_error",
        "message": "Unrecognized request URL (GET: /v1/nothing_here). Please see "
                   "https://stripe.com/docs or we can help at https://support.stripe.com/."}
    # A known path with another method is 405, with the short message.
    status, body = sandbox.api("DELETE", "/v1/payment_intents")
    assert status == 405 and body["error"] == {
        "type": "invalid_request_error",
        "message": "Unrecognized request URL (DELETE: /v1/payment_intents)."}
    # Outer slashes are ignored; an empty path part matches nothing.
    status, body = sandbox.api("GET", "/v1/customers/")
    assert status == 200 and body["object"] == "list"
    for path in ("/v1//customers", "/v1/customers//payment_methods", "/v1/customers/a/b/c"):
        status, body = sandbox.api("GET", path)
        assert status == 404, path
    # Ids are taken as they come, so an unknown one is the resource's own 404.
    status, body = sandbox.api("GET", "/v1/transfers/tr_nope/reversals/trr_nope")
    assert status == 404 and body["error"]["code"] == "resource_missing"


def test_list_pagination(gateway: Gateway, sandbox: SandboxHandle) -> None:
    cus = gateway.create_customer(idempotency_key=key(), email="pages@example.com")
    ids = []
    for _ in range(5):
        ids.append(gateway.create_payment_intent(amount=1000, currency="usd", metadata={},
                                                 idempotency_key=key(),
                                                 customer=cus["id"])["id"])
    page1 = gateway.list_payment_intents(customer=cus["id"], limit=2)
    assert [p["id"] for p in page1["data"]] == ids[::-1][:2] and page1["has_more"]
    page2 = gateway.list_payment_intents(customer=cus["id"], limit=2,
                                         starting_after=page1["data"][-1]["id"])
    assert [p["id"] for p in page2["data"]] == ids[::-1][2:4]
    page3 = gateway.list_payment_intents(customer=cus["id"], limit=2,
                                         starting_after=page2["data"][-1]["id"])
    assert [p["id"] for p in page3["data"]] == ids[:1] and not page3["has_more"]
    status, back = sandbox.api("GET", "/v1/payment_intents",
                               {"customer": cus["id"], "limit": 2, "ending_before": ids[1]})
    assert status == 200 and [p["id"] for p in back["data"]] == [ids[3], ids[2]]
    assert back["url"] == "/v1/payment_intents" and back["object"] == "list"


def test_balance_transactions_listing(gateway: Gateway, sandbox: SandboxHandle) -> None:
    start = sandbox.now()
    pis = [pay(gateway, 1000 + i) for i in range(3)]
    page = gateway.list_balance_transactions(created_gte=start, limit=100, type="charge")
    sources = {bt["source"] for bt in page["data"]}
    assert {p["latest_charge"] for p in pis} <= sources
    assert all(bt["created"] >= start for bt in page["data"])
    everything = list(gateway.iter_balance_transactions(created_gte=start, limit=2))
    assert len({bt["id"] for bt in everything}) == len(everything) >= 3
    one = gateway.list_balance_transactions(source=pis[0]["latest_charge"])
    assert [bt["amount"] for bt in one["data"]] == [1000]
    none = gateway.list_balance_transactions(created_lt=start - 10_000_000)
    assert none["data"] == []


def test_balance(gateway: Gateway, sandbox: SandboxHandle) -> None:
    pay(gateway, 1000)
    bal = gateway.retrieve_balance()
    assert bal["object"] == "balance"
    assert any(b["currency"] == "usd" for b in bal["pending"])
