"""Abuse rules for tips, each refusal explained and nothing written: a creator an admin has
blocked, too many tips from one fan (or guest email), too many from one card."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from payments.auth import issue_key
from payments.config import Config
from payments.db import session_scope
from tests.fixtures.live import LiveApp
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import sandbox_config, serve
from tests.integration.tips.test_flow import new_creator, new_fan
from tests.integration.tips.test_tips import tip_count

PER_FAN = (3, 3600)
PER_CARD = (4, 3600)


@pytest.fixture
def strict(committed_db: Config, sandbox: SandboxHandle) -> Iterator[LiveApp]:
    config = sandbox_config(committed_db, sandbox).with_overrides(
        tip_velocity_per_fan=PER_FAN, tip_velocity_per_card=PER_CARD)
    with serve(config) as served:
        yield LiveApp(served.url, config, served.app, sandbox, "")


def tip(live: LiveApp, key: str | None, creator: dict[str, Any], **body: Any) -> Any:
    return live.call("POST", "/v1/tips", key, json={
        "creator": creator["handle"], "amount": 700, "currency": "usd", **body})


def assert_refused(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, error
    return error


def test_a_blocked_creator_takes_no_tips_until_unblocked(strict: LiveApp) -> None:
    creator = new_creator(strict)
    fan = new_fan(strict)
    with session_scope() as s:
        admin = issue_key(s, "admin", None, label="abuse-test")
    reason = "chargeback ring under review"
    r = strict.call("POST", f"/v1/admin/creators/{creator['handle']}/block_tips", admin,
                    json={"reason": reason})
    assert r.status_code == 200, r.text
    assert r.json()["tips_blocked"] is True and r.json()["tips_blocked_reason"] == reason
    # Only an admin may block.
    assert strict.call("POST", f"/v1/admin/creators/{creator['handle']}/block_tips",
                       creator["api_key"], json={"reason": "x"}).status_code == 403

    before = strict.sandbox.count("payment_intent")
    error = assert_refused(tip(strict, fan["api_key"], creator, payment_method="pm_card_visa"),
                           409, "creator_blocked")
    assert reason not in error["message"] and error["param"] == "creator"
    assert tip_count() == 0 and strict.sandbox.count("payment_intent") == before

    r = strict.call("POST", f"/v1/admin/creators/{creator['id']}/unblock_tips", admin)
    assert r.status_code == 200 and r.json()["tips_blocked"] is False
    assert tip(strict, fan["api_key"], creator, payment_method="pm_card_visa").status_code == 201


def test_fan_and_guest_velocity(strict: LiveApp) -> None:
    creator = new_creator(strict)
    fan, other = new_fan(strict), new_fan(strict)
    limit, window = PER_FAN
    # Any outcome counts: a fan testing stolen cards mostly fails.
    outcomes = ["pm_card_visa", "pm_card_chargeDeclined", "pm_card_mastercard"]
    for pm in outcomes[:limit]:
        assert tip(strict, fan["api_key"], creator, payment_method=pm).status_code in (201, 402)
    count = tip_count()
    before = strict.sandbox.count("payment_intent")
    r = tip(strict, fan["api_key"], creator, payment_method="pm_card_amex")
    error = assert_refused(r, 429, "tip_velocity")
    assert f"at most {limit} in {window // 60} minutes" in error["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= window + 1
    assert tip_count() == count and strict.sandbox.count("payment_intent") == before
    # Another fan is not held back.
    assert tip(strict, other["api_key"], creator, payment_method="pm_card_amex").status_code == 201

    # A guest is counted by email, whatever its case.
    for i in range(limit):
        email = "Guest@Example.com" if i % 2 else "guest@example.com"
        assert tip(strict, None, creator, email=email).status_code == 201
    assert_refused(tip(strict, None, creator, email="GUEST@example.COM"), 429, "tip_velocity")
    assert tip(strict, None, creator, email="someone-else@example.com").status_code == 201


def test_card_velocity_across_fans(strict: LiveApp) -> None:
    creator = new_creator(strict)
    limit, _ = PER_CARD
    fans = [new_fan(strict) for _ in range(limit + 1)]
    for fan in fans[:limit]:
        assert tip(strict, fan["api_key"], creator, payment_method="pm_card_visa").status_code == 201
    error = assert_refused(tip(strict, fans[limit]["api_key"], creator,
                               payment_method="pm_card_visa"), 429, "tip_velocity")
    assert "this card" in error["message"]
    # Another card is fine; an unknown payment method is the client's mistake.
    assert tip(strict, fans[limit]["api_key"], creator,
               payment_method="pm_card_mastercard").status_code == 201
    bad = assert_refused(tip(strict, fans[limit]["api_key"], creator,
                             payment_method="pm_nosuchmethod"), 400, "resource_missing")
    assert bad["param"] == "payment_method"
