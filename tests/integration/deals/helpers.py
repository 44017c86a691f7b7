"""Helpers for the deal tests: parties, a deal through the API, the ledger's view of it."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from payments.db import db
from payments.deals import service
from payments.deals.models import Deal
from payments.ledger import service as ledger
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for


def new_creator(live: LiveApp, currency: str = "usd") -> dict[str, Any]:
    handle = "c_" + secrets.token_hex(4)
    r = live.call("POST", "/v1/creators", json={
        "handle": handle, "display_name": "Creator " + handle, "email": f"{handle}@example.com",
        "kind": "kol", "profession": "chef", "country": "US", "default_currency": currency})
    assert r.status_code == 201, r.text
    return dict(r.json())


def new_brand(live: LiveApp) -> dict[str, Any]:
    r = live.call("POST", "/v1/brands", json={"name": "Brand " + secrets.token_hex(3),
                                              "email": f"b{secrets.token_hex(3)}@example.com",
                                              "country": "US"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def admin_key() -> str:
    from payments.auth import issue_key

    with db.session() as session:
        key = issue_key(session, "admin", None, label="deals-test")
        session.commit()
    return key


def milestones(*amounts: int) -> list[dict[str, Any]]:
    platforms = ["instagram", "tiktok", "youtube", "x", "facebook", "blog", "offline"]
    return [{"title": f"Post {i + 1}", "platform": platforms[i % len(platforms)],
             "deliverable": f"One {platforms[i % len(platforms)]} post with the product",
             "amount": a, "due_date": "2027-01-15"} for i, a in enumerate(amounts)]


def propose(live: LiveApp, brand: dict[str, Any], creator: dict[str, Any], *amounts: int,
            currency: str = "usd", review_days: int = 7) -> dict[str, Any]:
    r = live.call("POST", "/v1/deals", brand["api_key"], json={
        "creator": creator["handle"], "title": "Spring launch", "brief": "Show the product.",
        "currency": currency.upper(), "milestones": milestones(*amounts),
        "review_days": review_days})
    assert r.status_code == 201, r.text
    return dict(r.json())


def act(live: LiveApp, key: str, path: str, body: dict[str, Any] | None = None,
        status: int = 200, **kwargs: Any) -> dict[str, Any]:
    r = live.call("POST", path, key, json=body or {}, **kwargs)
    assert r.status_code == status, r.text
    return dict(r.json())


def get_deal(live: LiveApp, key: str, deal_id: str) -> dict[str, Any]:
    r = live.call("GET", f"/v1/deals/{deal_id}", key)
    assert r.status_code == 200, r.text
    return dict(r.json())


def funded_deal(live: LiveApp, brand: dict[str, Any], creator: dict[str, Any], *amounts: int,
                currency: str = "usd", review_days: int = 7,
                payment_method: str = "pm_card_visa") -> dict[str, Any]:
    deal = propose(live, brand, creator, *amounts, currency=currency, review_days=review_days)
    act(live, creator["api_key"], f"/v1/deals/{deal['id']}/accept")
    act(live, brand["api_key"], f"/v1/deals/{deal['id']}/fund",
        {"payment_method": payment_method})
    return wait_status(live, brand["api_key"], deal["id"], "funded")


def wait_status(live: LiveApp, key: str, deal_id: str, status: str,
                timeout: float = 30) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: (d := get_deal(live, key, deal_id))["status"] == status and d, timeout=timeout)
    return found


def balances(live: LiveApp, key: str) -> dict[str, dict[str, int]]:
    r = live.call("GET", "/v1/creators/me/balance", key)
    assert r.status_code == 200, r.text
    return {b["currency"]: b for b in r.json()["balances"]}


def ledger_escrow(deal_id: str) -> int:
    with db.session() as session:
        deal = session.scalar(select(Deal).where(Deal.public_id == deal_id))
        assert deal is not None
        return service.ledger_escrow(session, deal)


def platform_balance(purpose: str, currency: str) -> int:
    """The signed balance of one platform account (debit positive), from the trial balance."""
    with db.session() as session:
        tb = ledger.trial_balance(session)
    return sum(int(r["balance"]) for r in tb["accounts"] if r["owner"] == "platform"
               and r["purpose"] == purpose and r["currency"] == currency)


def assert_escrow_matches_ledger(deal: dict[str, Any]) -> None:
    e = deal["escrow"]
    assert e["remaining"] == e["funded"] - e["released"] - e["refunded"] >= 0
    assert ledger_escrow(deal["id"]) == e["remaining"]


def verify_ledger() -> None:
    with db.session() as session:
        report = ledger.verify(session)
    assert report.ok, report
