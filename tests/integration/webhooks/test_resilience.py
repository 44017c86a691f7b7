"""The inbox survives a worker killed mid-batch, a broker stopped or wiped, and a database
that goes away: every event is processed once and no journal is doubled.

Each test has a private Stripe sandbox (so the sweeper's Events API backfill sees only its
own events) and, where the broker is harmed, a private redis-server.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from payments.config import Config
from payments.db import session_scope
from payments.gateway import sign_payload
from payments.ledger import service as ledger
from payments.ledger.models import Journal
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import (
    PrivateRedis,
    Served,
    point_celery_at,
    sandbox_config,
    serve,
    start_worker_process,
)
from tests.fixtures.workers import wait_for
from webhooks.models import PROCESSED, RECEIVED, WebhookEvent


def call(url: str, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.request(method, url + path, headers=headers, timeout=30, **kw)


def creator_and_fan(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    handle = "c_" + secrets.token_hex(4)
    c = call(url, "POST", "/v1/creators", json={
        "handle": handle, "display_name": handle, "email": f"{handle}@example.com",
        "kind": "influencer", "country": "US", "default_currency": "usd"})
    f = call(url, "POST", "/v1/fans", json={"email": f"f{secrets.token_hex(4)}@example.com",
                                            "display_name": "Fan"})
    assert c.status_code == 201 and f.status_code == 201, (c.text, f.text)
    return c.json(), f.json()


def make_tips(url: str, creator: dict[str, Any], fan: dict[str, Any], n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = call(url, "POST", "/v1/tips", fan["api_key"], json={
            "creator": creator["handle"], "amount": 500 + i, "currency": "usd",
            "payment_method": "pm_card_visa"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def inbox() -> dict[str, int]:
    with session_scope() as s:
        rows = s.execute(select(WebhookEvent.status, func.count())
                         .group_by(WebhookEvent.status)).all()
    return {status: int(n) for status, n in rows}


def journals_of(tip_ids: list[str]) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Journal.key).where(Journal.source_type == "tip",
                                                        Journal.source_id.in_(tip_ids))))


def assert_ledger_complete(tip_ids: list[str]) -> None:
    """Each tip's three journals (gross, Stripe fee, platform fee), once; books balanced."""
    keys = journals_of(tip_ids)
    assert sorted(keys) == sorted(f"tip:{t}{suffix}" for t in tip_ids
                                  for suffix in ("", ":processor_fee", ":platform_fee"))
    with session_scope() as s:
        report = ledger.verify(s)
    assert report.ok, report


def _served(config: Config, sandbox: SandboxHandle,
            base_config: Config) -> Iterator[tuple[Config, Served]]:
    """The app serving ``config``; this process's Celery publishes to its broker meanwhile."""
    point_celery_at(config)
    try:
        with serve(config, sandbox) as served:
            yield config, served
    finally:
        point_celery_at(base_config)


@pytest.fixture
def stack(committed_db: Config, private_sandbox: SandboxHandle,
          base_config: Config) -> Iterator[tuple[Config, Served]]:
    """The app on a private sandbox; this process's Celery publishes to the test broker."""
    yield from _served(sandbox_config(committed_db, private_sandbox), private_sandbox,
                       base_config)


def test_worker_killed_mid_batch_then_every_event_once(
    stack: tuple[Config, Served], private_sandbox: SandboxHandle, tmp_path: Path,
) -> None:
    from tasks.webhooks import sweep

    config, served = stack
    creator, fan = creator_and_fan(served.url)
    tip_ids = make_tips(served.url, creator, fan, 40)
    private_sandbox.wait_deliveries(timeout=30)
    events = 2 * len(tip_ids)  # payment_intent.succeeded, charge.succeeded
    wait_for(lambda: inbox().get(RECEIVED) == events, timeout=30)

    # A worker whose handlers are slow: it marks when it is 15 events into its batch.
    marker = tmp_path / "mid-batch"
    slow = start_worker_process(
        config, "tests.integration.webhooks.slow_worker",
        CREATORPAY_TEST_HANDLER_DELAY="0.05", CREATORPAY_TEST_MARK_AFTER="15",
        CREATORPAY_TEST_MARKER=str(marker))
    try:
        wait_for(marker.exists, timeout=60, interval=0.01)
    finally:
        slow.kill()  # SIGKILL, main process and pool children, mid-transaction
    # The batch is one transaction: nothing of it is left behind.
    assert inbox() == {RECEIVED: events}
    assert journals_of(tip_ids) == []

    worker = start_worker_process(config)
    try:
        assert sweep(stuck_after=0)["waiting"] == events  # the beat task re-drives them
        wait_for(lambda: inbox() == {PROCESSED: events}, timeout=60)
    finally:
        worker.stop()
    with session_scope() as s:
        attempts = set(s.scalars(select(WebhookEvent.attempts)))
    assert attempts == {1}  # each event applied by exactly one committed transaction
    assert_ledger_complete(tip_ids)


@pytest.fixture
def redis_stack(committed_db: Config, private_sandbox: SandboxHandle, base_config: Config,
                private_redis: PrivateRedis) -> Iterator[tuple[Config, Served]]:
    yield from _served(sandbox_config(committed_db, private_sandbox,
                                      broker_url=private_redis.url),
                       private_sandbox, base_config)


def _statuses(sandbox: SandboxHandle) -> list[Any]:
    return [d["status"] for d in sandbox.control("GET", "/webhooks/log")["data"]]


def test_broker_stopped_while_webhooks_arrive_nothing_lost(
    redis_stack: tuple[Config, Served], private_sandbox: SandboxHandle,
    private_redis: PrivateRedis,
) -> None:
    config, served = redis_stack
    worker = start_worker_process(config)
    try:
        creator, fan = creator_and_fan(served.url)
        before = make_tips(served.url, creator, fan, 3)
        wait_for(lambda: inbox().get(PROCESSED) == 6, timeout=60)

        private_redis.stop()
        during = make_tips(served.url, creator, fan, 10)
        private_sandbox.wait_deliveries(timeout=30)
        # Every delivery was answered 2xx at once: nothing for Stripe to retry.
        assert set(_statuses(private_sandbox)) == {200}
        # All stored (a drain already running when the broker went may settle a few).
        assert sum(inbox().values()) == 26

        private_redis.start()  # same port: the web's pending enqueue and the worker reconnect

        def settled() -> bool:
            nonlocal worker
            if worker.proc is not None and worker.proc.poll() is not None:
                # Celery 5.7 sometimes dies on the lost connection ("Unrecoverable error:
                # AttributeError ... 'hostname'"); a supervisor restarts it, as here.
                worker = start_worker_process(config)
            return inbox() == {PROCESSED: 26}

        wait_for(settled, timeout=60)
    finally:
        worker.stop()
    assert_ledger_complete(before + during)


def test_broker_flushall_then_the_sweeper_redrives_every_stored_event(
    redis_stack: tuple[Config, Served], private_sandbox: SandboxHandle,
    private_redis: PrivateRedis,
) -> None:
    from tasks.webhooks import sweep

    config, served = redis_stack
    creator, fan = creator_and_fan(served.url)
    tip_ids = make_tips(served.url, creator, fan, 10)
    private_sandbox.wait_deliveries(timeout=30)
    wait_for(lambda: inbox() == {RECEIVED: 20}, timeout=30)
    client = private_redis.client()
    wait_for(lambda: client.llen("webhooks") >= 1, timeout=10)  # drains were enqueued...
    private_redis.flushall()  # ...and are gone
    assert client.llen("webhooks") == 0

    worker = start_worker_process(config)
    try:
        assert inbox() == {RECEIVED: 20}
        assert sweep(stuck_after=0) == {"backfilled": 0, "waiting": 20}
        wait_for(lambda: inbox() == {PROCESSED: 20}, timeout=60)
    finally:
        worker.stop()
    assert_ledger_complete(tip_ids)


@pytest.mark.postgres
def test_database_connections_killed_503_then_recovery_and_stripe_retry_delivers(
    stack: tuple[Config, Served], private_sandbox: SandboxHandle, celery_worker: Any,
) -> None:
    """The app's database stops taking connections and its sessions are killed
    (``pg_terminate_backend``): the endpoint answers 503; once the database is back the app
    recovers by itself and the sandbox's retries deliver what was refused."""
    import os

    config, served = stack
    url = make_url(config.database_url)
    name = url.database
    admin = create_engine(make_url(os.environ["CREATORPAY_TEST_DATABASE_URL"]).set(
        drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT")

    def kill_sessions() -> int:
        with admin.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name}).scalar_one())

    creator, fan = creator_and_fan(served.url)
    # A tip waiting for payment: the PaymentIntent is confirmed while the database is away.
    r = call(served.url, "POST", "/v1/tips", fan["api_key"], json={
        "creator": creator["handle"], "amount": 2500, "currency": "usd"})
    assert r.status_code == 201, r.text
    tip = r.json()
    private_sandbox.wait_deliveries(timeout=30)

    # Killed idle connections alone: the pool notices (pre-ping) and the next request is fine.
    assert kill_sessions() >= 1
    assert call(served.url, "GET", f"/v1/tips/{tip['id']}", fan["api_key"]).status_code == 200

    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
        kill_sessions()
        status, _ = private_sandbox.api(
            "POST", f"/v1/payment_intents/{tip['payment_intent']}/confirm",
            {"payment_method": "pm_card_visa"}, idempotency_key="confirm-" + tip["id"])
        assert status == 200
        wait_for(lambda: 503 in _statuses(private_sandbox), timeout=30, interval=0.05)

        body = json.dumps({"id": "evt_" + secrets.token_hex(12), "object": "event",
                           "type": "invoice.created", "created": 1, "livemode": False,
                           "data": {"object": {"id": "in_x", "object": "invoice",
                                               "metadata": {}}}}).encode()
        direct = requests.post(served.url + "/webhooks/stripe", data=body, timeout=10, headers={
            "Stripe-Signature": sign_payload(body, private_sandbox.webhook_secret),
            "Content-Type": "application/json"})
        assert direct.status_code == 503
        assert direct.json()["error"]["code"] == "service_unavailable"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))

    # Back: the sandbox's retries land, the worker posts the tip.
    private_sandbox.wait_deliveries(timeout=60)
    wait_for(lambda: sorted(journals_of([tip["id"]])) == sorted(
        f"tip:{tip['id']}{s}" for s in ("", ":platform_fee", ":processor_fee")), timeout=60)
    assert call(served.url, "GET", f"/v1/tips/{tip['id']}", fan["api_key"]).json()[
        "status"] == "succeeded"
    admin.dispose()
