"""Shared steps: a creator with money available and a connected account that can take
payouts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from payments.accounts.models import Creator
from payments.clock import now_ts
from payments.db import session_scope
from payments.ledger import service as ledger
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.tips.test_flow import balances, new_creator, new_fan


def tip(live: LiveApp, creator: dict[str, Any], amount: int, currency: str = "usd",
        pm: str = "pm_card_visa") -> dict[str, Any]:
    fan = new_fan(live)
    r = live.call("POST", "/v1/tips", fan["api_key"], json={
        "creator": creator["handle"], "amount": amount, "currency": currency,
        "payment_method": pm})
    assert r.status_code == 201, r.text
    return dict(r.json())


def mature_now(creator: dict[str, Any], live: LiveApp) -> None:
    """Hold period 0 for this creator, then run maturation (what beat does) at the sandbox's
    time (journals take Stripe's times; other tests may have moved the sandbox clock)."""
    with session_scope() as s:
        s.execute(update(Creator).where(Creator.public_id == creator["id"]).values(hold_days=0))
    with session_scope() as s:
        ledger.mature_due(s, now=max(live.sandbox.now(), now_ts()) + 1)


def creator_with_available(live: LiveApp, amount: int, currency: str = "usd"
                           ) -> tuple[dict[str, Any], int]:
    creator = new_creator(live, currency)
    tip(live, creator, amount, currency)
    wait_for(lambda: balances(live, creator["api_key"]).get(currency, {}).get("pending", 0) > 0)
    mature_now(creator, live)
    avail = balances(live, creator["api_key"])[currency]["available"]
    assert avail > 0
    return creator, avail


def connect(live: LiveApp, creator: dict[str, Any]) -> str:
    r = live.call("POST", "/v1/creators/me/connect", creator["api_key"])
    assert r.status_code == 200, r.text
    account = str(r.json()["account_id"])
    live.sandbox.onboard(account)
    wait_for(lambda: live.call("GET", "/v1/creators/me/payout-settings",
                               creator["api_key"]).json()["payouts_enabled"], timeout=30)
    return account
