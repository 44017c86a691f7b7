"""What the subscription tests share: sign-ups, tiers, waiting for the pipeline, the ledger."""

from __future__ import annotations

import secrets
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select

from payments.db import session_scope
from payments.ledger.models import Entry, Journal, LedgerAccount
from payments.money import split_fee
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from webhooks.models import RECEIVED, WebhookEvent

DAY = 86400
FEE_RATE = Decimal("0.10")
FIXED_FEE = {"usd": 30, "eur": 25, "jpy": 40}


def new_creator(live: LiveApp, currency: str = "usd") -> dict[str, Any]:
    handle = "c_" + secrets.token_hex(4)
    r = live.call("POST", "/v1/creators", json={
        "handle": handle, "display_name": "Creator " + handle, "email": f"{handle}@example.com",
        "kind": "influencer", "country": "US", "default_currency": currency})
    assert r.status_code == 201, r.text
    return dict(r.json())


def new_fan(live: LiveApp, name: str = "Fan Fiona") -> dict[str, Any]:
    r = live.call("POST", "/v1/fans", json={"email": f"f{secrets.token_hex(3)}@example.com",
                                            "display_name": name})
    assert r.status_code == 201, r.text
    return dict(r.json())


def new_tier(live: LiveApp, creator: dict[str, Any], amount: int = 1000,
             currency: str = "usd", interval: str = "month", **extra: Any) -> dict[str, Any]:
    r = live.call("POST", "/v1/tiers", creator["api_key"], json={
        "name": f"Tier {amount}", "amount": amount, "currency": currency, "interval": interval,
        **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def subscribe(live: LiveApp, fan: dict[str, Any], tier: dict[str, Any],
              payment_method: str | None = "pm_card_visa", status: int = 201,
              **headers: str) -> dict[str, Any]:
    body: dict[str, Any] = {"tier": tier["id"]}
    if payment_method:
        body["payment_method"] = payment_method
    r = live.call("POST", "/v1/subscriptions", fan["api_key"], json=body, headers=headers)
    assert r.status_code == status, r.text
    return dict(r.json())


def get_sub(live: LiveApp, key: str, sub_id: str) -> dict[str, Any]:
    r = live.call("GET", f"/v1/subscriptions/{sub_id}", key)
    assert r.status_code == 200, r.text
    return dict(r.json())


def settle(live: LiveApp, timeout: float = 60) -> None:
    """Every delivery made and every stored event applied."""
    live.sandbox.wait_deliveries(timeout=timeout, endpoint_id=live.endpoint_id)

    def waiting() -> int:
        with session_scope() as s:
            return int(s.scalar(select(func.count()).select_from(WebhookEvent)
                                .where(WebhookEvent.status == RECEIVED)) or 0)

    wait_for(lambda: waiting() == 0, timeout=timeout)


def failed_events() -> list[tuple[str, str | None]]:
    with session_scope() as s:
        return [(t, e) for t, e in s.execute(
            select(WebhookEvent.type, WebhookEvent.last_error)
            .where(WebhookEvent.status == "failed"))]


def advance_to(live: LiveApp, ts: int) -> None:
    """Move the sandbox clock just past ``ts`` (a renewal, a retry) and let events settle."""
    now = live.sandbox.now()
    if ts + 60 > now:
        live.sandbox.advance(ts + 60 - now)
    settle(live)


def balances(live: LiveApp, key: str) -> dict[str, dict[str, int]]:
    r = live.call("GET", "/v1/creators/me/balance", key)
    assert r.status_code == 200, r.text
    return {b["currency"]: b for b in r.json()["balances"]}


def sandbox_fee(amount: int, currency: str) -> int:
    """The sandbox's processing fee: 2.9 % rounded half up plus the fixed part."""
    pct = int((Decimal(amount) * Decimal("0.029")).quantize(Decimal(1), ROUND_HALF_UP))
    return min(amount, pct + FIXED_FEE[currency])


def invoice_journals(invoice_id: str) -> dict[str, dict[tuple[str, str], int]]:
    """Journal key -> {(owner kind, purpose): amount} for one invoice's journals."""
    out: dict[str, dict[tuple[str, str], int]] = {}
    with session_scope() as s:
        for key, kind, purpose, amount in s.execute(
            select(Journal.key, LedgerAccount.owner_kind, LedgerAccount.purpose, Entry.amount)
            .join(Entry, Entry.journal_id == Journal.id)
            .join(LedgerAccount, LedgerAccount.id == Entry.account_id)
            .where(Journal.source_type == "invoice", Journal.source_id == invoice_id)
        ):
            legs = out.setdefault(str(key), {})
            legs[(str(kind), str(purpose))] = legs.get((str(kind), str(purpose)), 0) + int(amount)
    return out


def expected_earning(invoice_id: str, gross: int, fee: int) -> dict[str, dict[tuple[str, str], int]]:
    platform_fee, _ = split_fee(gross, FEE_RATE)
    key = f"invoice:{invoice_id}"
    return {
        key: {("platform", "stripe_balance"): gross, ("creator", "pending"): -gross},
        f"{key}:processor_fee": {("creator", "pending"): fee, ("platform", "stripe_balance"): -fee},
        f"{key}:platform_fee": {("creator", "pending"): platform_fee,
                                ("platform", "platform_revenue"): -platform_fee},
    }


def net_of(gross: int, fee: int) -> int:
    return gross - fee - split_fee(gross, FEE_RATE)[0]
