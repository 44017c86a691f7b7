"""A creator's months: tips, renewals, a released deal milestone, a refund, a lost dispute
and a payout; the statement in JSON, CSV and PDF; finals, the roll-forward, late entries.

Renewals and the deal milestone are posted through the ledger's public API with the kinds of
the journal conventions (``subscription`` / key ``invoice:{in_}``, ``deal`` / key
``deal_release:{ms_}``), as those flows post them; tips, the refund, the dispute and the
payout go through the real flows (API, sandbox, webhooks, worker).
"""

from __future__ import annotations

import csv
import io
import secrets
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select, update

from payments.accounts.models import Creator
from payments.clock import now_ts
from payments.db import session_scope
from payments.ledger import service as ledger
from payments.money import split_fee
from payments.statements import service as statements
from payments.statements.render import money
from tests.fixtures.inbox import Stack
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.payouts.helpers import connect, mature_now, tip
from tests.integration.tips.test_flow import balances, new_creator, stripe_fee

FIGURES = ("tips", "subscriptions", "deals", "processor_fees", "platform_fees", "refunds",
           "disputes", "adjustments", "payouts")
RATE = Decimal("0.10")


def creator_row(public_id: str) -> Creator:
    with session_scope() as s:
        c = s.scalar(select(Creator).where(Creator.public_id == public_id))
        assert c is not None
        s.expunge(c)
        return c


def earning(creator_id: int, kind: str, key: str, gross: int, fee: int, at: int) -> None:
    with session_scope() as s:
        platform_fee, _ = split_fee(gross, RATE)
        ledger.post_many(s, ledger.earning_journals(
            creator_id, "usd", gross=gross, processor_fee=fee, platform_fee=platform_fee,
            key=key, kind=kind, source=(kind, key.split(":", 1)[1]), effective_at=at))


def get_statement(live: LiveApp, key: str, period: str, accept: str = "application/json",
                  **query: Any) -> Any:
    r = live.call("GET", f"/v1/creators/me/statements/{period}", key,
                  headers={"Accept": accept}, params=query)
    assert r.status_code == 200, r.text
    return r


@pytest.fixture
def private_live(delivering_stack: Stack) -> Iterator[LiveApp]:
    """A sandbox of its own, whose clock no other test has advanced (the statement's months
    are the sandbox's), delivering to the app, and a worker."""
    with delivering_stack.worker():
        yield delivering_stack.live


def test_a_month_in_json_csv_and_pdf_and_the_roll_forward(private_live: LiveApp) -> None:
    live = private_live
    creator = new_creator(live)
    key = creator["api_key"]
    now = now_ts()
    this = statements.period_of(now)
    m1, m2 = statements.shift(this, -2), statements.shift(this, -1)
    start1, _ = statements.bounds(m1)
    start2, _ = statements.bounds(m2)
    start3, _ = statements.bounds(this)
    with session_scope() as s:  # the creator joined two months ago
        s.execute(update(Creator).where(Creator.public_id == creator["id"])
                  .values(created=start1 + 3600))
    cid = creator_row(creator["id"]).id

    # Two earlier months: renewals and a deal release (through the ledger's API).
    earning(cid, "subscription", f"invoice:in_{secrets.token_hex(6)}", 2000, 88, start1 + DAYS(3))
    earning(cid, "subscription", f"invoice:in_{secrets.token_hex(6)}", 2000, 88, start2 + DAYS(3))
    earning(cid, "deal", f"deal_release:ms_{secrets.token_hex(6)}", 30000, 0, start2 + DAYS(9))

    # This month: real tips, one refunded in part, one disputed and lost; a renewal and a
    # released milestone; then everything matures and is paid out.
    t1 = tip(live, creator, 5000)
    t2 = tip(live, creator, 4000)
    t3 = tip(live, creator, 3000, pm="pm_card_createDispute")
    earning(cid, "subscription", f"invoice:in_{secrets.token_hex(6)}", 2000, 88, now)
    earning(cid, "deal", f"deal_release:ms_{secrets.token_hex(6)}", 10000, 0, now)
    wait_for(lambda: live.call("GET", f"/v1/tips/{t2['id']}", key).json()["status"]
             == "succeeded", timeout=30)
    r = live.call("POST", f"/v1/tips/{t2['id']}/refund", key, json={"amount": 1500})
    assert r.status_code == 200, r.text
    dispute = wait_for(lambda: live.call("GET", f"/v1/tips/{t3['id']}", key).json()["dispute"],
                       timeout=30)
    live.sandbox.close_dispute(dispute["id"], "lost")
    wait_for(lambda: live.call("GET", f"/v1/tips/{t3['id']}", key).json()["dispute"]["status"]
             == "lost", timeout=30)
    wait_for(lambda: live.call("GET", f"/v1/tips/{t2['id']}", key).json()["amount_refunded"]
             == 1500, timeout=30)

    def kinds() -> set[str]:
        lines = live.call("GET", "/v1/creators/me/ledger", key, params={"limit": 100}).json()
        return {line["kind"] for line in lines["data"]}

    wait_for(lambda: {"refund", "dispute", "tip"} <= kinds(), timeout=30)
    mature_now(creator, live)
    connect(live, creator)
    avail = balances(live, key)["usd"]["available"]
    # The renewals and the milestone brought no money into the sandbox: top the platform up.
    live.sandbox.fund(avail, "usd")
    po = live.call("POST", "/v1/creators/me/payouts", key, json={"currency": "usd"})
    assert po.status_code == 201 and po.json()["status"] == "in_transit", po.text

    # Expected figures, from Stripe's own numbers.
    fees = {t["id"]: stripe_fee(live, t["payment_intent"]) for t in (t1, t2, t3)}
    gross_tips = sum(g for g, _ in fees.values())
    tip_fees = sum(f for _, f in fees.values())
    platform_tips = sum(split_fee(g, RATE)[0] for g, _ in fees.values())
    refund_creator = 1500 - split_fee(1500, RATE)[0]
    dispute_total = 3000 + 1500  # the amount and Stripe's dispute fee (usd)
    expected = {
        "tips": gross_tips, "subscriptions": 2000, "deals": 10000,
        "processor_fees": -(tip_fees + 88),
        "platform_fees": -(platform_tips + split_fee(2000, RATE)[0] + split_fee(10000, RATE)[0]),
        "refunds": -refund_creator, "disputes": -dispute_total, "adjustments": 0,
        "payouts": -avail,
    }
    body = get_statement(live, key, this).json()
    assert body["status"] == "open" and body["currency"] == "usd"
    assert {k: body[k] for k in FIGURES} == expected
    assert body["opening_balance"] + sum(expected.values()) == body["closing_balance"]
    # Nothing is left owed but the tips still in transit... the balance is what is owed.
    bal = balances(live, key)["usd"]
    assert body["closing_balance"] == bal["pending"] + bal["available"] + bal["reserved"]

    # Earlier months: open until frozen; the beat job (here called directly) freezes them.
    first = get_statement(live, key, m1).json()
    assert first["status"] == "open" and first["opening_balance"] == 0
    with session_scope() as s:
        c = s.get(Creator, cid)
        assert c is not None
        assert statements.freeze_due(s, c) == 2
    s1, s2 = (get_statement(live, key, m).json() for m in (m1, m2))
    s3 = get_statement(live, key, this).json()
    assert s1["status"] == s2["status"] == "final" and s3["status"] == "open"
    assert s1["checksum"] and s2["checksum"]
    assert s1["subscriptions"] == 2000 and s2["deals"] == 30000
    assert s2["opening_balance"] == s1["closing_balance"]
    assert s3["opening_balance"] == s2["closing_balance"]
    for st in (s1, s2, s3):
        assert st["opening_balance"] + sum(st[k] for k in FIGURES) == st["closing_balance"]
    assert {k: s3[k] for k in FIGURES} == expected

    # CSV: one line per ledger line, a header; its sums are the statement's figures.
    r = get_statement(live, key, this, accept="text/csv")
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == s3["line_count"] > 0
    by_cat: dict[str, int] = defaultdict(int)
    for row in rows:
        by_cat[row["category"]] += int(row["amount"])
    assert by_cat.pop("internal", 0) == 0  # maturation moves money between the buckets
    assert {k: by_cat.get(k, 0) for k in FIGURES} == expected
    assert sum(int(row["amount"]) for row in rows) == s3["closing_balance"] - s3["opening_balance"]

    # PDF: made with reportlab; the text extractor finds every figure.
    r = get_statement(live, key, this, accept="application/pdf")
    assert r.headers["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(r.content))
    assert 1 <= len(reader.pages) <= 3
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert this in text and creator["handle"] in text
    for k in ("opening_balance", *FIGURES, "closing_balance"):
        assert money(s3[k], "usd") in text, (k, money(s3[k], "usd"))

    # A correction effective in a final month appears next as an adjustment; the final
    # month does not change.
    earning(cid, "subscription", f"invoice:in_{secrets.token_hex(6)}", 1000, 0, start1 + DAYS(5))
    again = get_statement(live, key, m1).json()
    assert again == s1
    s3b = get_statement(live, key, this).json()
    assert s3b["adjustments"] == 1000 - split_fee(1000, RATE)[0]
    assert s3b["opening_balance"] == s2["closing_balance"]
    assert s3b["closing_balance"] == s3["closing_balance"] + s3b["adjustments"]
    late = [line for line in get_statement(live, key, this, lines_limit=1000).json()["lines"]
            if line["late"]]
    assert {line["category"] for line in late} == {"adjustments"} and len(late) == 2

    # A month with no activity, a currency never used: 200 and zeros.
    empty = get_statement(live, key, this, currency="jpy").json()
    assert empty["opening_balance"] == empty["closing_balance"] == 0 and empty["lines"] == []
    listed = live.call("GET", "/v1/creators/me/statements", key).json()["data"]
    assert {(x["period"], x["currency"]): x["status"] for x in listed} == {
        (m1, "usd"): "final", (m2, "usd"): "final", (this, "usd"): "open"}
    # Malformed or future months: 404; a bad currency: 400.
    for period in ("2026-13", "26-01", statements.shift(this, 1)):
        assert live.call("GET", f"/v1/creators/me/statements/{period}", key).status_code == 404
    assert live.call("GET", f"/v1/creators/me/statements/{this}", key,
                     params={"currency": "xyz"}).status_code == 400
    with session_scope() as s:
        assert ledger.verify(s).ok


def DAYS(n: int) -> int:  # noqa: N802
    return n * 86400
