"""Gateway unit tests: error mapping, webhook signatures, a stubbed HTTP client. No I/O."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
import stripe

from payments.gateway import (
    CardError,
    Gateway,
    GatewayError,
    TransientGatewayError,
    WebhookSignatureError,
    compute_signature,
    gateway_from_config,
    idempotency_key,
    map_error,
    sign_payload,
    verify_signature,
)

SECRET = "whsec_test_secret"


def _event(**extra: Any) -> bytes:
    body = {"id": "evt_123", "object": "event", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "object": "payment_intent"}}, **extra}
    return json.dumps(body).encode()


def _err(body: dict[str, Any]) -> dict[str, Any]:
    return {"error": body}


# ---------------------------------------------------------------- error mapping


def test_card_error_maps_to_card_error_with_decline_details() -> None:
    pi = {"id": "pi_1", "status": "requires_payment_method"}
    exc = stripe.CardError("Your card has insufficient funds.", None, "card_declined",
                           http_status=402,
                           json_body=_err({"type": "card_error", "code": "card_declined",
                                           "decline_code": "insufficient_funds",
                                           "message": "Your card has insufficient funds.",
                                           "payment_intent": pi}))
    mapped = map_error(exc)
    assert isinstance(mapped, CardError)
    assert isinstance(mapped, GatewayError)
    assert mapped.code == "card_declined"
    assert mapped.decline_code == "insufficient_funds"
    assert mapped.http_status == 402
    assert mapped.payment_intent == pi
    assert mapped.message == "Your card has insufficient funds."


def test_resource_missing_is_terminal_with_status_and_param() -> None:
    exc = stripe.InvalidRequestError("No such charge: 'ch_x'", "id", "resource_missing",
                                     http_status=404,
                                     json_body=_err({"type": "invalid_request_error",
                                                     "code": "resource_missing",
                                                     "param": "id",
                                                     "message": "No such charge: 'ch_x'"}))
    mapped = map_error(exc)
    assert type(mapped) is GatewayError
    assert (mapped.code, mapped.http_status, mapped.param) == ("resource_missing", 404, "id")


@pytest.mark.parametrize(
    "exc",
    [
        stripe.APIConnectionError("connection refused"),
        stripe.RateLimitError("slow down", http_status=429),
        stripe.APIError("boom", http_status=500),
        stripe.APIError("unavailable", http_status=503),
        stripe.APIError("lock timeout", http_status=409,
                        json_body=_err({"type": "invalid_request_error", "code": "lock_timeout"})),
        stripe.APIError("no status"),
    ],
)
def test_transient_errors(exc: stripe.StripeError) -> None:
    mapped = map_error(exc)
    assert isinstance(mapped, TransientGatewayError)
    assert not isinstance(mapped, GatewayError)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (stripe.AuthenticationError("bad key", http_status=401), "authentication_error"),
        (stripe.PermissionError("nope", http_status=403), "permission_error"),
        (stripe.IdempotencyError("reused", http_status=400,
                                 json_body=_err({"type": "idempotency_error"})),
         "idempotency_error"),
        (stripe.InvalidRequestError("Refund amount too large", "amount", "amount_too_large",
                                    http_status=400), "amount_too_large"),
    ],
)
def test_terminal_errors(exc: stripe.StripeError, code: str) -> None:
    mapped = map_error(exc)
    assert type(mapped) is GatewayError
    assert mapped.code == code


def test_non_stripe_errors_pass_through_and_ours_are_kept() -> None:
    boom = ValueError("x")
    assert map_error(boom) is boom
    ours = GatewayError("x")
    assert map_error(ours) is ours


def test_signature_verification_error_maps() -> None:
    mapped = map_error(stripe.SignatureVerificationError("bad", "t=1,v1=x"))
    assert isinstance(mapped, WebhookSignatureError)


# ---------------------------------------------------------------- signatures


def test_sign_payload_matches_stripe_sdk() -> None:
    payload = _event()
    ts = 1_700_000_000
    header = sign_payload(payload, SECRET, ts)
    expected = stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET, ts)
    assert header == expected
    assert header == f"t={ts},v1={compute_signature(payload, SECRET, ts)}"


def test_sign_payload_defaults_to_wall_clock() -> None:
    header = sign_payload(b"{}", SECRET)
    ts = int(header.split(",")[0][2:])
    assert abs(ts - time.time()) < 5


def _gateway(secrets: list[str]) -> Gateway:
    return Gateway(api_key="sk_test_unit", api_base="http://127.0.0.1:9", webhook_secrets=secrets)


def test_parse_event_accepts_valid_signature() -> None:
    body = _event()
    event = _gateway([SECRET]).parse_event(body, sign_payload(body, SECRET))
    assert event["id"] == "evt_123"
    assert event["data"]["object"]["id"] == "pi_1"


def test_parse_event_secret_rotation_accepts_either_secret() -> None:
    body = _event()
    gw = _gateway(["whsec_old", "whsec_new"])
    assert gw.parse_event(body, sign_payload(body, "whsec_old"))["id"] == "evt_123"
    assert gw.parse_event(body, sign_payload(body, "whsec_new"))["id"] == "evt_123"


def test_parse_event_accepts_header_with_several_signatures() -> None:
    body = _event()
    ts = int(time.time())
    header = f"t={ts},v1={compute_signature(body, 'whsec_other', ts)}," \
             f"v1={compute_signature(body, SECRET, ts)},v0=legacy"
    assert _gateway([SECRET]).parse_event(body, header)["id"] == "evt_123"


@pytest.mark.parametrize(
    "case",
    ["tampered", "wrong_secret", "stale", "missing", "empty", "garbled", "no_v1"],
)
def test_parse_event_rejects(case: str) -> None:
    body = _event()
    header: str | None = sign_payload(body, SECRET)
    if case == "tampered":
        body = body.replace(b"pi_1", b"pi_2")
    elif case == "wrong_secret":
        header = sign_payload(body, "whsec_wrong")
    elif case == "stale":
        header = sign_payload(body, SECRET, int(time.time()) - 301)
    elif case == "missing":
        header = None
    elif case == "empty":
        header = ""
    elif case == "garbled":
        header = "this is not a signature"
    elif case == "no_v1":
        header = f"t={int(time.time())},v0=abc"
    with pytest.raises(WebhookSignatureError):
        _gateway([SECRET]).parse_event(body, header)


def test_parse_event_within_tolerance_is_accepted() -> None:
    body = _event()
    header = sign_payload(body, SECRET, int(time.time()) - 250)
    assert _gateway([SECRET]).parse_event(body, header)["id"] == "evt_123"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"id": "evt_1"}', b"\xff\xfe"])
def test_parse_event_rejects_signed_malformed_bodies(body: bytes) -> None:
    ts = int(time.time())
    header = f"t={ts},v1={compute_signature(body, SECRET, ts)}"
    with pytest.raises(WebhookSignatureError):
        _gateway([SECRET]).parse_event(body, header)


def test_no_secret_configured_rejects() -> None:
    body = _event()
    with pytest.raises(WebhookSignatureError):
        verify_signature(body, sign_payload(body, SECRET), [])


# ---------------------------------------------------------------- helpers


def test_idempotency_key() -> None:
    assert idempotency_key("tip", 123) == "tip-123"
    assert idempotency_key("tip", 123, "refund", 2) == "tip-123-refund-2"


def test_gateway_from_config_is_duck_typed() -> None:
    class Cfg:
        stripe_secret_key = "sk_test_cfg"
        stripe_api_base = "http://127.0.0.1:12111/"
        stripe_webhook_secrets = ["whsec_a", "", "whsec_b"]

    gw = gateway_from_config(Cfg())
    assert gw.api_base == "http://127.0.0.1:12111"
    assert gw.webhook_secrets == ["whsec_a", "whsec_b"]


# ---------------------------------------------------------------- stubbed HTTP client


class StubClient(stripe.HTTPClient):
    """Answers from a script: each item is (status, body) or an exception to raise."""

    name = "stub"

    def __init__(self, script: list[Any]) -> None:
        super().__init__()
        self.script = list(script)
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []

    def request(self, method: str, url: str, headers: Mapping[str, str] | None,
                post_data: Any = None) -> tuple[bytes, int, Mapping[str, str]]:
        self.calls.append((method, url, dict(headers or {}), post_data))
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        status, body = item
        return json.dumps(body).encode(), status, {"Request-Id": "req_stub"}

    def close(self) -> None:
        return None

    def _sleep_time_seconds(self, num_retries: int) -> float:
        return 0.0


def _stub_gateway(script: list[Any], retries: int = 0) -> tuple[Gateway, StubClient]:
    stub = StubClient(script)
    gw = Gateway(api_key="sk_test_stub", api_base="http://stripe.invalid",
                 webhook_secrets=[SECRET], max_network_retries=retries, http_client=stub)
    return gw, stub


PI = {"id": "pi_123", "object": "payment_intent", "amount": 1500, "currency": "usd",
      "status": "succeeded", "metadata": {"tip_id": "7"}}


def test_create_payment_intent_sends_idempotency_key_and_returns_plain_dict() -> None:
    gw, stub = _stub_gateway([(200, PI)])
    result = gw.create_payment_intent(amount=1500, currency="USD", metadata={"tip_id": "7"},
                                      idempotency_key="tip-7", payment_method="pm_card_visa",
                                      confirm=True)
    assert result == PI
    assert type(result) is dict
    method, url, headers, body = stub.calls[0]
    assert method == "post"
    assert url == "http://stripe.invalid/v1/payment_intents"
    assert headers["Idempotency-Key"] == "tip-7"
    assert headers["Authorization"] == "Bearer sk_test_stub"
    assert "amount=1500" in body and "currency=usd" in body and "confirm=true" in body
    assert "metadata[tip_id]=7" in body.replace("%5B", "[").replace("%5D", "]")


def test_stubbed_decline_raises_card_error() -> None:
    gw, _ = _stub_gateway([(402, _err({"type": "card_error", "code": "card_declined",
                                       "decline_code": "generic_decline",
                                       "message": "Your card was declined.",
                                       "payment_intent": PI}))])
    with pytest.raises(CardError) as info:
        gw.create_payment_intent(amount=1500, currency="usd", metadata={},
                                 idempotency_key="tip-8", payment_method="pm_card_visa",
                                 confirm=True)
    assert info.value.decline_code == "generic_decline"
    assert info.value.payment_intent == PI


def test_stubbed_5xx_is_retried_then_transient() -> None:
    gw, stub = _stub_gateway([(500, _err({"type": "api_error", "message": "boom"}))] * 3,
                             retries=2)
    with pytest.raises(TransientGatewayError):
        gw.retrieve_payment_intent("pi_123")
    assert len(stub.calls) == 3


def test_stubbed_5xx_then_success_with_same_idempotency_key() -> None:
    gw, stub = _stub_gateway([(503, _err({"type": "api_error", "message": "x"})), (200, PI)],
                             retries=2)
    assert gw.create_refund(payment_intent="pi_123", idempotency_key="tip-7-refund-1")["id"]
    assert [c[2]["Idempotency-Key"] for c in stub.calls] == ["tip-7-refund-1"] * 2


def test_stubbed_connection_error_is_transient() -> None:
    gw, _ = _stub_gateway([stripe.APIConnectionError("refused", should_retry=False)])
    with pytest.raises(TransientGatewayError):
        gw.retrieve_charge("ch_1")


def test_amount_must_be_a_positive_int() -> None:
    gw, stub = _stub_gateway([])
    for bad in (0, -5, True, 15.0):
        with pytest.raises(ValueError):
            gw.create_payment_intent(amount=bad, currency="usd", metadata={},  # type: ignore[arg-type]
                                     idempotency_key="k")
    assert stub.calls == []
