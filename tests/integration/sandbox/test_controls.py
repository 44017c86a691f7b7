"""Sandbox controls: clock, faults, stats, counters."""

from __future__ import annotations

import time
import uuid

import pytest

from payments.gateway import Gateway, TransientGatewayError
from tests.fixtures.sandbox import SandboxHandle


def k() -> str:
    return uuid.uuid4().hex


def test_clock_follows_wall_time_plus_offset(sandbox: SandboxHandle) -> None:
    before = sandbox.now()
    assert abs(before - time.time()) < 400 * 86400  # offset from earlier advances only
    after = sandbox.advance(3600)
    assert after - before >= 3600
    status, body = sandbox.raw("POST", "/_sandbox/clock/advance", b'{"seconds": -1}',
                               {"Content-Type": "application/json"})
    assert status == 400 and body["error"]["param"] == "seconds"


def test_5xx_fault_is_retried_by_the_sdk(gateway: Gateway, sandbox: SandboxHandle) -> None:
    sandbox.fault(500, 1)
    cus = gateway.create_customer(idempotency_key=k(), email="retry@example.com")
    assert cus["id"].startswith("cus_")


def test_persistent_5xx_and_429_are_transient(gateway: Gateway, sandbox: SandboxHandle) -> None:
    no_retry = Gateway(api_key=sandbox.secret_key, api_base=sandbox.base_url,
                       webhook_secrets=[], max_network_retries=0)
    sandbox.fault(503, 1)
    with pytest.raises(TransientGatewayError) as info:
        no_retry.retrieve_balance()
    assert info.value.http_status == 503
    sandbox.fault(429, 1)
    with pytest.raises(TransientGatewayError) as info:
        no_retry.retrieve_balance()
    assert info.value.http_status == 429
    sandbox.clear_faults()


def test_lost_response_is_replayed_by_idempotency(gateway: Gateway,
                                                  sandbox: SandboxHandle) -> None:
    marker = k()
    sandbox.fault(500, 1, after=True, path_prefix="/v1/payment_intents")
    pi = gateway.create_payment_intent(amount=1000, currency="usd", metadata={"m": marker},
                                       idempotency_key=k(), payment_method="pm_card_visa",
                                       confirm=True)
    assert pi["status"] == "succeeded"
    assert sandbox.count("payment_intent", {"m": marker}) == 1


def test_dropped_connection_is_transient_without_retries(sandbox: SandboxHandle) -> None:
    no_retry = Gateway(api_key=sandbox.secret_key, api_base=sandbox.base_url,
                       webhook_secrets=[], max_network_retries=0)
    sandbox.fault(mode="close", count=1)
    with pytest.raises(TransientGatewayError):
        no_retry.retrieve_balance()
    sandbox.clear_faults()


def test_sandbox_down_is_transient() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = Gateway(api_key="sk_test_x", api_base=f"http://127.0.0.1:{port}", webhook_secrets=[],
                   max_network_retries=0)
    with pytest.raises(TransientGatewayError):
        down.retrieve_balance()


def test_stats_and_counters(gateway: Gateway, sandbox: SandboxHandle) -> None:
    before = sandbox.stats()["objects"].get("customer", 0)
    gateway.create_customer(idempotency_key=k(), metadata={"who": "stats"})
    stats = sandbox.stats()
    assert stats["objects"]["customer"] == before + 1
    assert stats["requests"] > 0 and "webhooks" in stats
    assert sandbox.count("customer", {"who": "stats"}) >= 1


def test_unknown_control_is_404(sandbox: SandboxHandle) -> None:
    status, body = sandbox.raw("GET", "/_sandbox/nope")
    assert status == 404 and body["error"]["type"] == "invalid_request_error"
