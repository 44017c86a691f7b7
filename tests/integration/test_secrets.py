"""Secrets stay secret: no log line holds an API key, a webhook or Stripe secret, or a card
number, through sign-up, a tip paid and booked, a refund, a bad key and a bad signature; and
a key is answered only once, at creation."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from payments import logs
from payments.gateway import sign_payload
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.tips.test_flow import balances, new_creator, new_fan

# 13 to 19 digits, grouped by spaces or dashes or not, standing on their own: not the
# fraction of a number (Celery logs run times as 0.034178639000060684s), not part of an
# identifier or a UUID (Celery's task ids, 9a009852-9314-4424-b8aa-...).
CARD_NUMBER = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w-])")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The production handler (payments.logs: JSON, context fields, redaction) on the root
    logger, writing where the test can read it."""
    stream = io.StringIO()
    handler = logs.LogHandler("json", stream=stream)
    logging.getLogger().addHandler(handler)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


def test_no_log_line_holds_a_secret(live_stack: LiveApp, caplog: pytest.LogCaptureFixture,
                                    json_log: io.StringIO) -> None:
    live = live_stack
    caplog.set_level(logging.DEBUG)
    creator = new_creator(live)
    fan = new_fan(live)
    request_id = "test-" + creator["handle"]
    r = live.call("POST", "/v1/tips", fan["api_key"], headers={"X-Request-Id": request_id}, json={
        "creator": creator["handle"], "amount": 2500, "currency": "usd",
        "payment_method": "pm_card_visa", "message": "card 4242 4242 4242 4242 is mine"})
    assert r.headers["X-Request-Id"] == request_id
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

    # The JSON lines as they leave the process: every field, not only the message.
    records = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert len(records) > 10
    for record in records:
        flat = json.dumps(record)
        for secret in secrets:
            assert secret not in flat, flat
        assert not CARD_NUMBER.search(flat), flat
    # Inside a request every line carries its id (the client's own, when well formed) ...
    tip_lines = [x for x in records if x.get("request_id") == request_id]
    assert any(x.get("route") == "/v1/tips" and x.get("status") == 201 for x in tip_lines)
    assert all(x["request_id"].startswith(("req_", "test-")) for x in records if "request_id" in x)
    # ... and the webhook worker's carry the Stripe event id and the task's.
    applied = [x for x in records if x.get("event_id") and x["logger"] == "webhooks.worker"]
    assert applied, "no worker line carried an event id"
    assert all(x["event_id"].startswith("evt_") and x.get("task") == "webhooks.drain"
               and x.get("task_id") for x in applied)


def test_config_repr_hides_secrets(base_config: Any) -> None:
    config = base_config.with_overrides(
        database_url="postgresql+psycopg://app:db-password@db/creatorpay",
        broker_url="amqp://app:broker-password@mq//", stripe_secret_key="sk_live_very_secret",
        stripe_webhook_secrets=("whsec_one", "whsec_two"))
    text = repr(config)
    for secret in ("db-password", "broker-password", "sk_live_very_secret", "whsec_one"):
        assert secret not in text
