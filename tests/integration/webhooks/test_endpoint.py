"""``POST /webhooks/stripe``: verify on the raw body, keep what we handle, store once, 2xx.

Deliveries are built here and signed with the endpoint secret exactly as Stripe signs them,
so duplicates, tampering and stale timestamps are easy to make.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import func, select

from payments.config import Config
from payments.db import db, session_scope
from payments.gateway import compute_signature, sign_payload
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import PrivateRedis, free_port, point_celery_at, sandbox_config
from tests.fixtures.workers import QUEUES, wait_for
from webhooks.models import PROCESSED, RECEIVED, WebhookEvent

PATH = "/webhooks/stripe"


def make_event(type_: str = "invoice.created", **obj: Any) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
        # No creatorpay metadata: an invoice of no subscription of ours, which the
        # subscriptions domain looks up, finds nothing to do for, and marks processed.
        "data": {"object": {"id": "in_" + secrets.token_hex(8), "object": "invoice",
                            "amount_due": 1000, "currency": "usd", "status": "draft",
                            "metadata": {}, **obj}},
    }


def post(client: Any, body: bytes, signature: str | None) -> Any:
    headers = {} if signature is None else {"Stripe-Signature": signature}
    return client.post(PATH, data=body, headers=headers, content_type="application/json")


def stored(session: Any, stripe_id: str) -> int:
    return int(session.scalar(
        select(func.count()).select_from(WebhookEvent).where(WebhookEvent.stripe_id == stripe_id)
    ) or 0)


@pytest.fixture
def secret(base_config: Config) -> str:
    assert base_config.stripe_webhook_secret
    return base_config.stripe_webhook_secret


@pytest.fixture
def notified() -> Iterator[mock.MagicMock]:
    """The enqueue after commit, recorded instead of sent."""
    with mock.patch("webhooks.endpoint.notifier") as notifier:
        yield notifier.notify


def test_signed_event_is_stored_once_and_notified_once(
    client: Any, db_session: Any, secret: str, notified: mock.MagicMock
) -> None:
    event = make_event()
    body = json.dumps(event).encode()
    first = post(client, body, sign_payload(body, secret))
    assert first.status_code == 200, first.text
    assert first.get_json() == {"received": True, "stored": True}
    assert notified.call_count == 1

    again = post(client, body, sign_payload(body, secret))  # Stripe's retry, signed afresh
    assert again.status_code == 200
    assert again.get_json() == {"received": True, "stored": False}
    assert notified.call_count == 1  # a known event enqueues nothing

    assert stored(db_session, event["id"]) == 1
    row = db_session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_id == event["id"]))
    assert row.status == RECEIVED and row.type == "invoice.created"
    assert row.payload == event and row.via == "webhook" and row.attempts == 0


def test_unhandled_type_is_acknowledged_not_stored(
    client: Any, db_session: Any, secret: str, notified: mock.MagicMock
) -> None:
    event = make_event("customer.created")
    body = json.dumps(event).encode()
    r = post(client, body, sign_payload(body, secret))
    assert r.status_code == 200
    assert r.get_json() == {"received": True, "stored": False}
    assert stored(db_session, event["id"]) == 0
    assert notified.call_count == 0


def test_event_no_route_takes_is_acknowledged_not_stored(
    client: Any, db_session: Any, secret: str, notified: mock.MagicMock
) -> None:
    """A handled type whose object carries no kind, where every route for the type acts only
    on objects of its own kind (a renewal's PaymentIntent, made by Stripe's invoice): 200,
    not stored, no drain woken. The same type with one of our kinds is stored."""
    for type_, obj in (("payment_intent.succeeded", "payment_intent"),
                       ("charge.succeeded", "charge")):
        theirs = make_event(type_, object=obj)
        body = json.dumps(theirs).encode()
        r = post(client, body, sign_payload(body, secret))
        assert r.status_code == 200, r.text
        assert r.get_json() == {"received": True, "stored": False}
        assert stored(db_session, theirs["id"]) == 0
        ours = make_event(type_, object=obj,
                          metadata={"creatorpay_kind": "tip", "tip_id": "tip_unknown"})
        body = json.dumps(ours).encode()
        r = post(client, body, sign_payload(body, secret))
        assert r.get_json() == {"received": True, "stored": True}
        assert stored(db_session, ours["id"]) == 1
    assert notified.call_count == 2


def _bad_deliveries(secret: str) -> dict[str, tuple[bytes, str | None, str]]:
    event = make_event()
    body = json.dumps(event).encode()
    ts = int(time.time())
    tampered = body.replace(b'"amount_due": 1000', b'"amount_due": 9000')
    assert tampered != body
    stale = ts - 301
    return {
        "tampered body": (tampered, sign_payload(body, secret, ts), "invalid_signature"),
        "wrong secret": (body, sign_payload(body, "whsec_" + secrets.token_hex(16), ts),
                         "invalid_signature"),
        "stale timestamp": (body, f"t={stale},v1={compute_signature(body, secret, stale)}",
                            "invalid_signature"),
        "missing header": (body, None, "missing_signature"),
        "garbage header": (body, "v1=deadbeef", "invalid_signature"),
    }


@pytest.mark.parametrize("case", ["tampered body", "wrong secret", "stale timestamp",
                                  "missing header", "garbage header"])
def test_bad_signature_is_400_and_nothing_stored(
    client: Any, db_session: Any, secret: str, notified: mock.MagicMock, case: str
) -> None:
    body, signature, code = _bad_deliveries(secret)[case]
    r = post(client, body, signature)
    assert r.status_code == 400, r.text
    error = r.get_json()["error"]
    assert error["code"] == code and error["message"]
    assert db_session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    assert notified.call_count == 0


def test_rotated_secret_still_verifies(
    base_config: Config, db_session: Any, secret: str, notified: mock.MagicMock
) -> None:
    from payments import create_app

    new = "whsec_" + secrets.token_hex(16)
    client = create_app(base_config.with_overrides(
        stripe_webhook_secrets=(new, secret))).test_client()
    event = make_event()
    body = json.dumps(event).encode()
    assert post(client, body, sign_payload(body, secret)).status_code == 200
    assert stored(db_session, event["id"]) == 1


def test_database_unreachable_is_503_json(base_config: Config, secret: str,
                                          notified: mock.MagicMock) -> None:
    """A PostgreSQL URL on a port where nothing listens: Stripe gets 503 and retries."""
    from payments import create_app

    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/creatorpay"
    try:
        client = create_app(base_config.with_overrides(database_url=dead)).test_client()
        event = make_event()
        body = json.dumps(event).encode()
        started = time.monotonic()
        r = post(client, body, sign_payload(body, secret))
        assert time.monotonic() - started < 5
        assert r.status_code == 503, r.text
        assert r.get_json()["error"]["code"] == "service_unavailable"
        assert r.headers.get("Retry-After")
        assert notified.call_count == 0
    finally:
        db.configure(base_config.database_url)


def test_broker_down_still_200_and_the_sweeper_drives_it_later(
    committed_db: Config, private_sandbox: SandboxHandle, base_config: Config, secret: str,
) -> None:
    """No broker: the row is committed and answered 200 at once; once a broker is back the
    beat sweeper's drain processes it.

    The web process's own enqueue is made to fail for good (as if the process died after
    the commit), so the sweeper is the only way the row can be processed.
    """
    from celery.contrib.testing.worker import start_worker

    from payments import create_app
    from tasks.webhooks import sweep
    from webhooks.notify import notifier

    broker = PrivateRedis()  # a port with nothing listening yet
    config = sandbox_config(committed_db, private_sandbox, broker_url=broker.url,
                            stripe_webhook_secrets=(secret,))
    app = point_celery_at(config)
    client = create_app(config).test_client()  # hands the notifier its enqueue function
    lost = mock.patch.object(notifier, "_send", side_effect=ConnectionError("broker down"))
    lost.start()
    try:
        event = make_event()
        body = json.dumps(event).encode()
        started = time.monotonic()
        r = post(client, body, sign_payload(body, secret))
        elapsed = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert r.get_json() == {"received": True, "stored": True}
        assert elapsed < 1.0  # the down broker does not hold the answer

        def status() -> str | None:
            with session_scope() as s:
                return s.scalar(select(WebhookEvent.status)
                                .where(WebhookEvent.stripe_id == event["id"]))

        broker.start()
        with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False,
                          queues=QUEUES.split(","), shutdown_timeout=30, loglevel="WARNING"):
            assert status() == RECEIVED
            assert sweep(stuck_after=0) == {"backfilled": 0, "waiting": 1}  # beat, by hand
            wait_for(lambda: status() == PROCESSED, timeout=30)
    finally:
        lost.stop()
        point_celery_at(base_config)
        broker.stop()


@pytest.fixture
def flask_calls(app: Any) -> Iterator[list[str]]:
    """The requests that reached Flask (its request_started signal), by path."""
    from flask import request, request_started

    seen: list[str] = []

    def _count(sender: Any, **_: Any) -> None:
        seen.append(request.path)

    request_started.connect(_count, app)
    yield seen
    request_started.disconnect(_count, app)


def test_a_signed_delivery_is_answered_without_flask(
    client: Any, db_session: Any, secret: str, notified: mock.MagicMock, flask_calls: list[str]
) -> None:
    event = make_event()
    body = json.dumps(event).encode()
    r = post(client, body, sign_payload(body, secret))
    assert r.status_code == 200 and r.get_json() == {"received": True, "stored": True}
    assert r.headers["Content-Type"] == "application/json"
    assert flask_calls == []  # the fast path answered it
    assert stored(db_session, event["id"]) == 1


@pytest.mark.parametrize("case", ["bad-signature", "text-plain", "too-large", "no-body"])
def test_anything_else_on_the_webhook_path_gets_flasks_answer(
    client: Any, db_session: Any, secret: str, notified: mock.MagicMock, flask_calls: list[str],
    case: str,
) -> None:
    event = make_event()
    body = json.dumps(event).encode()
    headers = {"Stripe-Signature": sign_payload(body, secret)}
    content_type = "application/json"
    if case == "bad-signature":
        headers["Stripe-Signature"] = sign_payload(body, "whsec_" + "0" * 32)
    elif case == "text-plain":
        content_type = "text/plain"
    elif case == "too-large":
        body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    elif case == "no-body":
        body = b""
    r = client.post(PATH, data=body, headers=headers, content_type=content_type)
    expected = {"bad-signature": 400, "text-plain": 415, "too-large": 413, "no-body": 400}[case]
    assert r.status_code == expected, r.text
    assert set(r.get_json()["error"]) >= {"code", "message"}
    assert flask_calls == [PATH]  # handed over, body intact
    assert stored(db_session, event["id"]) == 0 and notified.call_count == 0


def test_a_store_failure_after_verifying_is_answered_by_flask_without_a_second_store(
    client: Any, secret: str, notified: mock.MagicMock, flask_calls: list[str]
) -> None:
    from sqlalchemy.exc import OperationalError

    body = json.dumps(make_event()).encode()
    with mock.patch("webhooks.endpoint.writer") as writer:
        writer.store.side_effect = OperationalError("INSERT ...", None, Exception("db away"))
        r = post(client, body, sign_payload(body, secret))
    assert r.status_code == 503, r.text
    assert r.get_json()["error"]["code"] == "service_unavailable"
    assert writer.store.call_count == 1  # handed to Flask as the error, not tried again
    assert flask_calls == [PATH] and notified.call_count == 0


def test_a_drain_that_cannot_be_woken_does_not_fail_the_delivery(
    client: Any, db_session: Any, secret: str
) -> None:
    event = make_event()
    body = json.dumps(event).encode()
    with mock.patch("webhooks.endpoint.notifier") as notifier:
        notifier.notify.side_effect = RuntimeError("can't start new thread")
        r = post(client, body, sign_payload(body, secret))
    assert r.status_code == 200 and r.get_json() == {"received": True, "stored": True}
    assert stored(db_session, event["id"]) == 1  # the sweeper re-drives it


@pytest.mark.parametrize("length", ["\u00b2", "1" * 5000, "-5", "12a"])
def test_a_content_length_that_is_not_a_number_is_not_a_500(
    client: Any, secret: str, notified: mock.MagicMock, length: str
) -> None:
    body = json.dumps(make_event()).encode()
    r = client.post(PATH, data=body, content_type="application/json",
                    headers={"Stripe-Signature": sign_payload(body, secret)},
                    environ_overrides={"CONTENT_LENGTH": length})
    assert 400 <= r.status_code < 500, r.text
    assert notified.call_count == 0
