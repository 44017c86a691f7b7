"""Secrets stay secret: no log line holds an API key, a webhook or Stripe secret, or a card
number, through sign-up, a tip paid and booked, a refund, a bad key and a bad signature; and
a key is answered only once, at creation."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import requests

from payments.gateway import sign_payload
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.tips.test_flow import balances, new_creator, new_fan

CARD_NUMBER = re.compile(r"(?<!\d)(?:\d[ -]?){13,19}(?!\d)")


def test_no_log_line_holds_a_secret(live_stack: LiveApp, caplog: pytest.LogCaptureFixture) -> None:
    live = live_stack
    caplog.set_level(logging.DEBUG)
    creator = new_creator(live)
    fan = new_fan(live)
    r = live.call("POST", "/v1/tips", fan["api_key"], json={
        "creator": creator["handle"], "amount": 2500, "currency": "usd",
        "payment_method": "pm_card_visa", "message": "card 4242 4242 4242 4242 is mine"})
    assert r.status_code == 201, r.text
    tip = r.json()
    wait_for(lambda: balances(live, creator["api_key"]).get("usd", {}).get("pending"), timeout=30)
    refund = live.call("POST", f"/v1/tips/{tip['id']}/refund", creator["api_key"],
                       json={"amount": 500})
    assert refund.status_code == 200, refund.text
    # A wrong key and a forged webhook are logged as failures, never with what was sent.
    assert live.call("GET", "/v1/creators/me", creator["api_key"][:-4] + "abcd").status_code == 401
    forged = b'{"id": "evt_forged", "type": "charge.succeeded", "data": {"object": {}}}'
    bad = requests.post(live.url + "/webhooks/stripe", data=forged, timeout=10, headers={
        "Content-Type": "application/json",
        "Stripe-Signature": sign_payload(forged, "whsec_not_the_secret")})
    assert bad.status_code == 400

    # Keys are shown once: nothing a creator or fan reads later carries one.
    me = live.call("GET", "/v1/creators/me", creator["api_key"]).json()
    assert "api_key" not in me and creator["api_key"] not in str(me)

    secrets = [creator["api_key"], fan["api_key"], live.config.stripe_secret_key,
               *live.config.stripe_webhook_secrets]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) > 10  # the flow did log
    for line in lines:
        for secret in secrets:
            assert secret not in line, line
        assert not CARD_NUMBER.search(line), line


def test_config_repr_hides_secrets(base_config: Any) -> None:
    config = base_config.with_overrides(
        database_url="postgresql+psycopg://app:db-password@db/creatorpay",
        broker_url="amqp://app:broker-password@mq//", stripe_secret_key="sk_live_very_secret",
        stripe_webhook_secrets=("whsec_one", "whsec_two"))
    text = repr(config)
    for secret in ("db-password", "broker-password", "sk_live_very_secret", "whsec_one"):
        assert secret not in text
