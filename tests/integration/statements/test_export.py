"""The whole-history CSV export (``GET /v1/creators/me/ledger/export``), streamed.

On PostgreSQL the lines are formatted by the database (``COPY ... TO STDOUT``); the export
must be byte for byte what the cursor-and-csv path writes for the same ledger, on this
database and on SQLite (the same rows copied into one):
ids, UTC days, signs, a missing source as empty fields, quoting. Each line is also checked
against the ledger's own JSON, so both paths are held to the ledger, not only to each other.
"""

from __future__ import annotations

import calendar
import csv
import io
import secrets
from typing import Any

from sqlalchemy import select

from payments.accounts.models import Creator
from payments.db import db, session_scope
from payments.ledger import service as ledger
from payments.statements import render
from payments.statements import service as statements
from tests.fixtures.live import LiveApp
from tests.integration.tips.test_flow import new_creator

DAY = 86400


def seed(creator_id: int) -> dict[str, int]:
    """Earnings with fees (enough lines for several chunks), a journal with no source, a
    source id that needs quoting, and lines either side of a UTC midnight."""
    midnight = calendar.timegm((2026, 3, 1, 0, 0, 0))
    pending = ledger.creator_account(creator_id, "pending", "usd")
    available = ledger.creator_account(creator_id, "available", "usd")
    stripe = ledger.platform_account("stripe_balance", "usd")
    revenue = ledger.platform_account("platform_revenue", "usd")
    tag = secrets.token_hex(4)
    with session_scope() as s:
        specs: list[ledger.JournalSpec] = []
        for i in range(450):
            specs += ledger.earning_journals(
                creator_id, "usd", gross=1000 + i, processor_fee=59, platform_fee=100 + i % 7,
                key=f"tip:tip_{tag}{i}", kind="tip", source=("tip", f"tip_{tag}{i}"),
                effective_at=midnight - 200 * DAY + i * 3 * 3600)
        ledger.post_many(s, specs)
        ledger.post(s, f"test:late_eve:{tag}", "tip", [ledger.debit(stripe, 700),
                                                     ledger.credit(pending, 700)],
                    source=("tip", f'tip_{tag},"quoted"'), effective_at=midnight - 1)
        ledger.post(s, f"test:midnight:{tag}", "subscription",
                    [ledger.debit(stripe, 900), ledger.credit(pending, 900)],
                    source=("invoice", f"in_{tag}"), effective_at=midnight)
        ledger.post(s, f"test:nosource:{tag}", "adjustment",
                    [ledger.debit(revenue, 300), ledger.credit(available, 300)],
                    effective_at=midnight + 5)
        ledger.post(s, f"test:move:{tag}", "maturation",
                    [ledger.debit(pending, 250), ledger.credit(available, 250)],
                    source=("tip", f"tip_{tag}0"), effective_at=midnight + 6)
    return {"midnight": midnight}


def exported_by_sqlite(accs: list[int]) -> bytes:
    """The same ledger rows (these accounts, their entries and journals) copied into a SQLite
    database of their own, and exported there: SQLite's path on the same data."""
    from sqlalchemy import create_engine, insert

    from payments.db import Base
    from payments.ledger.models import Entry, Journal, LedgerAccount

    lite = create_engine("sqlite://")
    accounts, journals, entries = (LedgerAccount.__table__, Journal.__table__,
                                   Entry.__table__)
    Base.metadata.create_all(lite, tables=[accounts, journals, entries])
    theirs = select(Entry.journal_id).where(Entry.account_id.in_(accs))
    with db.engine.connect() as src, lite.begin() as dst:
        for table, where in ((accounts, LedgerAccount.id.in_(accs)),
                             (journals, Journal.id.in_(theirs)),
                             (entries, Entry.account_id.in_(accs))):
            rows = [dict(r._mapping) for r in src.execute(select(table).where(where))]
            assert rows
            dst.execute(insert(table), rows)
    with lite.connect() as conn:
        assert conn.dialect.name == "sqlite"
        return b"".join(render.history_csv(conn, accs))


def ledger_json(live: LiveApp, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100, "currency": "usd"}
        if after:
            params["starting_after"] = after
        page = live.call("GET", "/v1/creators/me/ledger", key, params=params).json()
        out += page["data"]
        if not page["has_more"]:
            return out[::-1]  # oldest first, as the export
        after = page["data"][-1]["id"]


def test_export_streams_every_line_as_the_ledger_has_it(live_app: LiveApp) -> None:
    live = live_app
    creator = new_creator(live)
    key = creator["api_key"]
    with session_scope() as s:
        c = s.scalar(select(Creator).where(Creator.public_id == creator["id"]))
        assert c is not None
        cid = c.id
    when = seed(cid)

    r = live.call("GET", "/v1/creators/me/ledger/export", key, stream=True)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    # Streamed: no length known in advance, sent in chunks.
    assert "Content-Length" not in r.headers
    assert r.headers.get("Transfer-Encoding") == "chunked"
    body = b"".join(r.iter_content(chunk_size=None))

    # The same bytes as the cursor-and-csv path for the same ledger (on SQLite the endpoint
    # is that path; on PostgreSQL this compares COPY's formatting with Python's).
    with session_scope() as s:
        accs = statements.balance_accounts(s, cid, "usd")
    with db.engine.connect() as conn:
        assert b"".join(render.history_cursor(conn, accs)) == body
    # And what SQLite itself exports for the same rows.
    assert exported_by_sqlite(accs) == body
    with db.engine.connect() as conn:
        chunks = list(render.history_csv(conn, accs))
    assert b"".join(chunks) == body
    # Bounded chunks: about EXPORT_CHUNK each (one line over at most), never the whole body.
    assert len(chunks) > 1
    assert all(len(c) < render.EXPORT_CHUNK + 200 for c in chunks)

    text = body.decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == render.CSV_HEADER
    lines = [dict(zip(render.CSV_HEADER, row, strict=True)) for row in rows[1:]]
    expected = ledger_json(live, key)
    assert len(lines) == len(expected) == 450 * 3 + 2 + 1 + 2
    for got, want in zip(lines, expected, strict=True):
        assert got["entry"] == want["id"] and got["journal"] == want["journal"]
        assert int(got["effective_at"]) == want["effective_at"]
        assert got["kind"] == want["kind"] and got["account"] == want["account"]
        assert int(got["amount"]) == want["amount"] and got["currency"] == "usd"
        src = want["source"] or {}
        assert (got["source_type"], got["source_id"]) == (src.get("type") or "",
                                                          src.get("id") or "")
        assert got["late"] == "false"
    by_kind = {line["kind"]: line for line in lines}
    assert by_kind["subscription"]["date"] == "2026-03-01"
    assert by_kind["subscription"]["category"] == "subscriptions"
    eve = next(line for line in lines if line["source_id"].endswith('"quoted"'))
    assert eve["date"] == "2026-02-28" and eve["category"] == "tips"
    assert '"tip_' in text and '""quoted""' in text  # quoted as csv quotes it
    nosource = by_kind["adjustment"]
    assert nosource["source_type"] == nosource["source_id"] == ""
    assert nosource["category"] == "adjustments" and int(nosource["amount"]) == 300
    # An absent source is two empty fields, not two quoted empty strings.
    raw = next(ln for ln in text.splitlines() if ln.startswith(nosource["entry"] + ","))
    assert raw.endswith(",usd,,,false")
    fees = [line for line in lines if line["kind"] == "fee"]
    assert {line["category"] for line in fees} == {"processor_fees", "platform_fees"}
    assert {line["category"] for line in lines if line["kind"] == "maturation"} == {"internal"}
    # The export adds up to the balance.
    bal = live.call("GET", "/v1/creators/me/balance", key).json()["balances"][0]
    assert sum(int(line["amount"]) for line in lines) == (
        bal["pending"] + bal["available"] + bal["reserved"])
    assert when["midnight"] % DAY == 0

    # A currency with no lines: the header alone.
    r = live.call("GET", "/v1/creators/me/ledger/export", key, params={"currency": "jpy"})
    assert r.status_code == 200 and r.text == ",".join(render.CSV_HEADER) + "\n"
