"""Failed events keep their error and are replayed (admin endpoint, ``creatorpay webhooks
replay``) once the cause is fixed; events never delivered are backfilled from the Events API.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from payments.auth import issue_key
from payments.config import Config
from payments.db import session_scope
from payments.ledger import service as ledger
from payments.ledger.models import Journal
from tests.fixtures.live import LiveApp
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import sandbox_config, serve
from tests.fixtures.workers import wait_for
from tests.integration.tips.test_flow import new_creator, new_fan
from webhooks.models import FAILED, PROCESSED, WebhookEvent


def tip_journals(tip_id: str) -> list[str]:
    with session_scope() as s:
        return sorted(s.scalars(select(Journal.key).where(Journal.source_id == tip_id)))


def complete(tip_id: str) -> list[str]:
    return sorted(f"tip:{tip_id}{s}" for s in ("", ":processor_fee", ":platform_fee"))


def charge_event(tip_pi: str) -> WebhookEvent | None:
    with session_scope() as s:
        for row in s.scalars(select(WebhookEvent).where(WebhookEvent.type == "charge.succeeded")):
            if row.payload["data"]["object"].get("payment_intent") == tip_pi:
                return row
    return None


@pytest.fixture
def admin_key(committed_db: Config) -> str:
    with session_scope() as s:
        return issue_key(s, "admin", None, label="test")


@pytest.fixture
def broken_ledger() -> Iterator[mock.MagicMock]:
    """Posting a tip's earning fails (the cause an operator fixes before replaying)."""
    with mock.patch("payments.tips.service.charge_succeeded",
                    side_effect=RuntimeError("ledger offline for maintenance")) as broken:
        yield broken


def failed_tip(live: LiveApp) -> tuple[dict[str, Any], WebhookEvent]:
    creator = new_creator(live)
    fan = new_fan(live)
    r = live.call("POST", "/v1/tips", fan["api_key"], json={
        "creator": creator["handle"], "amount": 1800, "currency": "usd",
        "payment_method": "pm_card_visa"})
    assert r.status_code == 201, r.text
    tip = r.json()
    row = wait_for(lambda: (e := charge_event(tip["payment_intent"])) is not None
                   and e.status == FAILED and e, timeout=30)
    assert row.last_error == "RuntimeError: ledger offline for maintenance"
    assert row.attempts == 1
    assert tip_journals(tip["id"]) == []
    return tip, row


def test_failed_event_listed_and_replayed_by_the_admin_endpoint(
    live_stack: LiveApp, admin_key: str
) -> None:
    live = live_stack
    with mock.patch("payments.tips.service.charge_succeeded",
                    side_effect=RuntimeError("ledger offline for maintenance")):
        tip, row = failed_tip(live)

    listed = live.call("GET", "/v1/admin/webhook-events?status=failed", admin_key)
    assert listed.status_code == 200, listed.text
    [shown] = [e for e in listed.json()["data"] if e["id"] == row.stripe_id]
    assert shown["status"] == "failed" and shown["type"] == "charge.succeeded"
    assert shown["error"] == "RuntimeError: ledger offline for maintenance"
    assert all(e["status"] == "failed" for e in listed.json()["data"])
    # Non-admins may not see the inbox.
    assert live.call("GET", "/v1/admin/webhook-events", None).status_code == 401

    replayed = live.call("POST", f"/v1/admin/webhook-events/{row.stripe_id}/replay", admin_key)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["status"] == "received" and replayed.json()["error"] is None
    wait_for(lambda: tip_journals(tip["id"]) == complete(tip["id"]), timeout=30)
    done = charge_event(tip["payment_intent"])
    assert done is not None and done.status == PROCESSED and done.last_error is None
    # Replaying a processed event again changes nothing: handlers are idempotent.
    again = live.call("POST", f"/v1/admin/webhook-events/{row.stripe_id}/replay", admin_key)
    assert again.status_code == 200
    wait_for(lambda: (e := charge_event(tip["payment_intent"])) and e.status == PROCESSED,
             timeout=30)
    assert tip_journals(tip["id"]) == complete(tip["id"])
    unknown = live.call("POST", "/v1/admin/webhook-events/evt_nope/replay", admin_key)
    assert unknown.status_code == 404


def test_cli_replays_every_failed_event(live_stack: LiveApp) -> None:
    from payments.cli import _load_domain_commands, cli

    _load_domain_commands()  # what ``main()`` does before running ``cli``
    live = live_stack
    with mock.patch("payments.tips.service.charge_succeeded",
                    side_effect=RuntimeError("ledger offline for maintenance")):
        tips = [failed_tip(live)[0] for _ in range(2)]

    config = live.config
    env = {
        "CREATORPAY_DATABASE_URL": config.database_url,
        "CREATORPAY_BROKER_URL": config.broker_url,
        "CREATORPAY_VAR_DIR": str(config.var_dir),
        "CREATORPAY_STRIPE_API_BASE": config.stripe_api_base or "",
        "CREATORPAY_STRIPE_SECRET_KEY": config.stripe_secret_key,
    }
    runner = CliRunner()
    status = runner.invoke(cli, ["webhooks", "status"], env=env)
    assert status.exit_code == 0, status.output
    assert "failed: 2" in status.output.replace("    ", "")
    result = runner.invoke(cli, ["webhooks", "replay", "--failed"], env=env)
    assert result.exit_code == 0, result.output
    assert "2 event(s) queued again" in result.output
    for tip in tips:
        wait_for(lambda t=tip: tip_journals(t["id"]) == complete(t["id"]), timeout=30)
    nothing = runner.invoke(cli, ["webhooks", "replay", "--failed"], env=env)
    assert "0 event(s) queued again" in nothing.output
    with session_scope() as s:
        assert ledger.verify(s).ok


def test_backfill_stores_events_never_delivered(
    committed_db: Config, private_sandbox: SandboxHandle
) -> None:
    """Tips made while no webhook endpoint is registered: nothing is pushed; the Events API
    backfill finds the events and the drain completes the ledger."""
    from webhooks.worker import backfill, drain

    config = sandbox_config(committed_db, private_sandbox)
    with serve(config) as served:  # not registered with the sandbox: no deliveries
        live = LiveApp(served.url, config, served.app, private_sandbox, "")
        creator = new_creator(live)
        fan = new_fan(live)
        tip_ids = []
        for i in range(5):
            r = live.call("POST", "/v1/tips", fan["api_key"], json={
                "creator": creator["handle"], "amount": 1000 + i, "currency": "usd",
                "payment_method": "pm_card_visa", "message": secrets.token_hex(4)})
            assert r.status_code == 201, r.text
            tip_ids.append(r.json()["id"])
        with session_scope() as s:
            assert s.scalars(select(WebhookEvent)).all() == []

        assert backfill(config) == 10  # payment_intent.succeeded + charge.succeeded each
        assert backfill(config) == 0  # the overlap re-reads, nothing is stored twice
        with session_scope() as s:
            assert {r.via for r in s.scalars(select(WebhookEvent))} == {"backfill"}
        assert drain(config) == 10
        for tip_id in tip_ids:
            assert tip_journals(tip_id) == complete(tip_id)
        bal = live.call("GET", "/v1/creators/me/balance", creator["api_key"]).json()
        assert bal["balances"][0]["pending"] > 0
    with session_scope() as s:
        assert ledger.verify(s).ok
