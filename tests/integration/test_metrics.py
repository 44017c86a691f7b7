"""``GET /metrics``: a tip booked end to end (the app served, the sandbox delivering, a real
worker) moves the ledger's postings and the request counters, the inbox backlog comes back
to zero; a poison event is counted as failed; a failing task is counted. The numbers are
held against the database itself, before and after the postings checkpoint rolls."""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from payments.db import session_scope
from payments.gateway import sign_payload
from payments.ledger import metrics as ledger_metrics
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.tips.test_flow import balances, new_creator, new_fan

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(live: LiveApp, **headers: str) -> Samples:
    r = requests.get(live.url + "/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def ledger_truth() -> tuple[dict[str, int], dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """Journals by kind, entries and debits by kind and currency: counted in full."""
    journals: dict[str, int] = {}
    entries: dict[tuple[str, str], int] = {}
    debits: dict[tuple[str, str], int] = defaultdict(int)
    with session_scope() as s:
        for kind, n in s.execute(text("SELECT kind, COUNT(*) FROM ledger_journals GROUP BY kind")):
            journals[kind] = int(n)
        for kind, cur, n, d in s.execute(text(
                "SELECT j.kind, e.currency, COUNT(*), "
                "SUM(CASE WHEN e.amount > 0 THEN e.amount ELSE 0 END) FROM ledger_entries e "
                "JOIN ledger_journals j ON j.id = e.journal_id GROUP BY j.kind, e.currency")):
            entries[(kind, cur)] = int(n)
            debits[(kind, cur)] = int(d)
    return journals, entries, dict(debits)


def assert_postings_match_the_ledger(samples: Samples) -> None:
    journals, entries, debits = ledger_truth()
    assert {dict(k)["kind"]: v for k, v in series(samples, "creatorpay_ledger_journals_total").items()} == journals
    assert {(dict(k)["kind"], dict(k)["currency"]): v for k, v in
            series(samples, "creatorpay_ledger_entries_total").items()} == entries
    assert {(dict(k)["kind"], dict(k)["currency"]): v for k, v in
            series(samples, "creatorpay_ledger_debits_minor_units_total").items()} == debits


def test_metrics_move_when_a_tip_is_booked(live_stack: LiveApp) -> None:
    live = live_stack
    creator = new_creator(live)
    fan = new_fan(live)
    before = scrape(live)
    assert_postings_match_the_ledger(before)

    r = live.call("POST", "/v1/tips", fan["api_key"], json={
        "creator": creator["handle"], "amount": 1500, "currency": "usd",
        "payment_method": "pm_card_visa"})
    assert r.status_code == 201, r.text
    wait_for(lambda: balances(live, creator["api_key"]).get("usd", {}).get("pending"), timeout=30)
    # Booked: the inbox drains back to nothing waiting, with no lag.
    after = wait_for(lambda: (lambda s: s if value(s, "creatorpay_webhook_inbox_backlog",
                                                   status="received") == 0 else None)(scrape(live)),
                     timeout=30)
    assert value(after, "creatorpay_webhook_lag_seconds") == 0
    assert value(after, "creatorpay_webhook_inbox_backlog", status="failed") == 0

    # The postings moved, by exactly what the ledger now holds.
    assert_postings_match_the_ledger(after)
    tip_before = value(before, "creatorpay_ledger_debits_minor_units_total", kind="tip", currency="usd")
    tip_after = value(after, "creatorpay_ledger_debits_minor_units_total", kind="tip", currency="usd")
    assert tip_after > tip_before
    assert sum(series(after, "creatorpay_ledger_journals_total").values()) > sum(
        series(before, "creatorpay_ledger_journals_total").values())

    # Requests: the tip's POST once, under its route (never its raw path); the sandbox's
    # deliveries to the webhook route; the scrape itself.
    tips = {"method": "POST", "route": "/v1/tips", "status": "201"}
    assert value(after, "creatorpay_http_requests_total", **tips) == value(
        before, "creatorpay_http_requests_total", **tips) + 1
    hooks = {"method": "POST", "route": "/webhooks/stripe", "status": "200"}
    assert value(after, "creatorpay_http_requests_total", **hooks) > value(
        before, "creatorpay_http_requests_total", **hooks)
    assert value(after, "creatorpay_http_request_duration_seconds_count",
                 method="POST", route="/v1/tips") >= 1
    tip_id = r.json()["id"]
    assert not [k for k in series(after, "creatorpay_http_requests_total")
                if creator["handle"] in str(k) or tip_id in str(k)]

    # The checkpoint rolled: the same numbers, now mostly from the stored counters.
    with session_scope() as s:
        assert ledger_metrics.roll(s) > 0
    with session_scope() as s:
        assert ledger_metrics.roll(s) == 0  # nothing new since
    rolled = scrape(live)
    assert_postings_match_the_ledger(rolled)
    for name in ("creatorpay_ledger_journals_total", "creatorpay_ledger_entries_total"):
        assert series(rolled, name) == series(after, name)
    assert value(rolled, "creatorpay_metrics_collect_errors", module="payments.ledger.metrics") == 0


def poison_event() -> bytes:
    """A charge.succeeded naming a tip and a balance transaction that do not exist."""
    return json.dumps({
        "id": "evt_" + secrets.token_hex(12), "object": "event", "type": "charge.succeeded",
        "api_version": "2025-03-31.basil", "created": int(time.time()), "livemode": False,
        "data": {"object": {
            "id": "ch_" + secrets.token_hex(12), "object": "charge", "amount": 1000,
            "currency": "usd", "status": "succeeded", "paid": True, "captured": True,
            "payment_intent": "pi_" + secrets.token_hex(12),
            "balance_transaction": "txn_" + secrets.token_hex(12),
            "metadata": {"creatorpay_kind": "tip", "tip_id": "tip_" + secrets.token_hex(8)}}},
    }).encode()


def test_a_poison_event_is_counted_failed_and_a_failing_task_counted(
        live_stack: LiveApp, celery_app: Any) -> None:
    live = live_stack
    before = scrape(live)
    raw = poison_event()
    r = requests.post(live.url + "/webhooks/stripe", data=raw, timeout=10, headers={
        "Content-Type": "application/json",
        "Stripe-Signature": sign_payload(raw, live.config.stripe_webhook_secrets[0])})
    assert r.status_code == 200, r.text
    failed_before = value(before, "creatorpay_webhook_inbox_backlog", status="failed")
    after = wait_for(lambda: (lambda s: s if value(s, "creatorpay_webhook_inbox_backlog",
                                                   status="failed") == failed_before + 1
                              else None)(scrape(live)), timeout=30)
    assert value(after, "creatorpay_webhook_inbox_backlog", status="received") == 0
    assert value(after, "creatorpay_webhook_lag_seconds") == 0

    # A task that fails (a heartbeat with no token breaks a NOT NULL column) is counted.
    failures = value(before, "creatorpay_task_failures_total", task="health.ping")
    celery_app.send_task("health.ping", args=[None])
    wait_for(lambda: value(scrape(live), "creatorpay_task_failures_total",
                           task="health.ping") == failures + 1, timeout=30)


@pytest.mark.parametrize(("sent", "echoed"), [
    ("abc-123_req.7:x", True), ("", False), ("x" * 129, False), ("bad id\twith spaces", False),
    ("<script>", False)])
def test_every_answer_carries_a_request_id(live_stack: LiveApp, sent: str, echoed: bool) -> None:
    live = live_stack
    for path in ("/healthz", "/v1/no-such-route", "/metrics"):
        r = requests.get(live.url + path, headers={"X-Request-Id": sent}, timeout=10)
        rid = r.headers["X-Request-Id"]
        if echoed:
            assert rid == sent
        else:
            assert rid != sent and rid.startswith("req_") and len(rid) == 28
    # Two requests with no id of their own get different ones.
    a, b = (requests.get(live.url + "/healthz", timeout=10).headers["X-Request-Id"]
            for _ in range(2))
    assert a != b


def test_metrics_token_when_configured(base_config: Any, db_session: Any) -> None:
    from payments import create_app

    client = create_app(base_config.with_overrides(metrics_token="s3cret-token")).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-t\u00f6ken"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and b"creatorpay_webhook_inbox_backlog" in ok.data
    open_client = create_app(base_config).test_client()
    assert open_client.get("/metrics").status_code == 200


def test_a_domain_whose_metrics_fail_is_reported_and_the_rest_still_answer(
        base_config: Any, db_session: Any) -> None:
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, generate_latest

    import webhooks.metrics
    from payments.metrics import DatabaseCollector

    def broken(_session: Any) -> Any:
        raise RuntimeError("relation does not exist")

    bad = SimpleNamespace(__name__="tests.broken_metrics", collect=broken)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(db_session, [bad, webhooks.metrics]))
    found: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    assert value(found, "creatorpay_metrics_collect_errors", module="tests.broken_metrics") == 1
    assert ("creatorpay_webhook_lag_seconds", frozenset()) in found
