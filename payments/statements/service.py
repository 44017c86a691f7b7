"""Statements over the ledger, by journal kind (no other domain is read).

A creator's balance in a currency is what the platform owes them: ``pending + available +
reserved``. A statement month lists the entries of those three accounts that belong to it,
grouped by their journal's kind, so ``opening_balance + sum(activity) == closing_balance``
and each opening is the previous closing.

Which month an entry belongs to: its journal's effective month, unless that month was
already final when the entry was posted, in which case it belongs to the month being open
at the time and shows there as an adjustment. Concretely, with ``W(P)`` the newest entry id
a final month ``P`` saw (``through_entry_id``; unbounded for months not final), an entry
belongs to month ``M`` when either ``W(M-1) < id <= W(M)`` and it is effective before
``M`` ends, or ``id <= W(M-1)`` and it is effective inside ``M``. Entries posted more than a
month ahead of their effective time are not expected (effective times are Stripe's): the
scan starts at the watermark of the newest freeze made before the month began.
"""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from payments.accounts.models import Creator
from payments.clock import now_ts
from payments.db import for_update
from payments.errors import NotFound
from payments.ids import PREFIXES, public_id
from payments.ledger.models import LedgerAccount
from payments.statements.models import Statement

BALANCE = ("pending", "available", "reserved")
FIGURES = ("tips", "subscriptions", "deals", "processor_fees", "platform_fees", "refunds",
           "disputes", "adjustments", "payouts")
# Journals that only move money between the creator's own balance accounts (net zero).
INTERNAL = ("maturation", "reserve", "reserve_release")
UNBOUNDED = 2**62

CATEGORY_SQL = (
    "CASE WHEN j.kind = 'tip' THEN 'tips' "
    "WHEN j.kind = 'subscription' THEN 'subscriptions' "
    "WHEN j.kind IN ('deal', 'escrow') THEN 'deals' "
    "WHEN j.kind = 'fee' AND j.key LIKE '%platform_fee' THEN 'platform_fees' "
    "WHEN j.kind = 'fee' THEN 'processor_fees' "
    "WHEN j.kind = 'refund' THEN 'refunds' "
    "WHEN j.kind = 'dispute' THEN 'disputes' "
    "WHEN j.kind = 'payout' THEN 'payouts' "
    "WHEN j.kind IN ('maturation', 'reserve', 'reserve_release') THEN 'internal' "
    "ELSE 'adjustments' END"
)
# In a month: entries effective before it (posted after their month was final) are
# adjustments, whatever their kind.
MONTH_CATEGORY_SQL = f"CASE WHEN j.effective_at < :start THEN 'adjustments' ELSE {CATEGORY_SQL} END"
MEMBER_SQL = (
    "e.account_id IN :accs AND e.id > :lo AND e.id <= :hi AND ("
    "(e.id > :mid AND j.effective_at < :end) OR "
    "(e.id <= :mid AND j.effective_at >= :start AND j.effective_at < :end))"
)


# ----------------------------------------------------------------------------- periods


def parse_period(period: str) -> tuple[int, int] | None:
    """``YYYY-MM`` -> (year, month), or None."""
    if len(period) != 7 or period[4] != "-" or not (period[:4] + period[5:]).isdigit():
        return None
    year, month = int(period[:4]), int(period[5:])
    return (year, month) if 1970 <= year <= 9999 and 1 <= month <= 12 else None


def bounds(period: str) -> tuple[int, int]:
    parsed = parse_period(period)
    assert parsed is not None
    year, month = parsed
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)), calendar.timegm((ny, nm, 1, 0, 0, 0))


def period_of(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


def shift(period: str, months: int) -> str:
    parsed = parse_period(period)
    assert parsed is not None
    n = parsed[0] * 12 + parsed[1] - 1 + months
    return f"{n // 12:04d}-{n % 12 + 1:02d}"


# ----------------------------------------------------------------------------- reading


def balance_accounts(session: Session, creator_id: int, currency: str) -> list[int]:
    return [int(i) for i in session.scalars(select(LedgerAccount.id).where(
        LedgerAccount.owner_kind == "creator", LedgerAccount.owner_id == creator_id,
        LedgerAccount.currency == currency, LedgerAccount.purpose.in_(BALANCE)))]


def currencies(session: Session, creator: Creator) -> list[str]:
    used = set(session.scalars(select(LedgerAccount.currency).where(
        LedgerAccount.owner_kind == "creator", LedgerAccount.owner_id == creator.id,
        LedgerAccount.purpose.in_(BALANCE)).distinct()))
    return sorted(used | {creator.default_currency})


def finals(session: Session, creator_id: int, currency: str) -> dict[str, Statement]:
    return {s.period: s for s in session.scalars(select(Statement).where(
        Statement.creator_id == creator_id, Statement.currency == currency))}


def _window(final: dict[str, Statement], period: str) -> dict[str, int]:
    start, end = bounds(period)
    prev = final.get(shift(period, -1))
    this = final.get(period)
    # Lower bound of the scan: what a freeze made before this month began had seen (nothing
    # effective in this month can have been posted by then; a catch-up freeze made later
    # may have seen this month's entries already).
    lo = max([s.through_entry_id for p, s in final.items()
              if p <= shift(period, -2) and s.created < start] or [0])
    return {"start": start, "end": end, "lo": lo,
            "mid": prev.through_entry_id if prev is not None else UNBOUNDED,
            "hi": this.through_entry_id if this is not None else UNBOUNDED}


def _params(accs: list[int], window: dict[str, int]) -> dict[str, Any]:
    return {"accs": accs or [-1], **window}


# Journals are posted at or after their Stripe object's time, give or take clock skew (the
# ledger books ``created`` no earlier than ``effective_at``, whatever our clock says).
POSTING_SKEW = 86400


def scan_floor(session: Session, accs: list[int], start: int) -> int:
    """An entry id below every line effective at or after ``start``: a binary search (by
    index probes) for the creator's first entry posted after ``start - POSTING_SKEW``.

    Entry ids follow posting order, and posting follows the effective time; so the months
    are found without an index on times, whatever the length of the history.
    """
    if not accs:
        return 0
    conn = session.connection()
    probe = text(
        "SELECT e.id, j.created FROM ledger_entries e JOIN ledger_journals j "
        "ON j.id = e.journal_id WHERE e.account_id IN :accs AND e.id >= :x "
        "ORDER BY e.id LIMIT 1").bindparams(bindparam("accs", expanding=True))
    cutoff = start - POSTING_SKEW
    lo, hi = 0, int(session.scalar(select(func.max(LedgerAccount.last_entry_id)).where(
        LedgerAccount.id.in_(accs))) or 0)
    # Invariant: every entry with id <= lo was posted before the cutoff.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        row = conn.execute(probe, {"accs": accs, "x": mid}).first()
        if row is None or int(row[1]) >= cutoff:
            hi = mid - 1
        else:
            lo = int(row[0])
            if lo >= hi:
                break
    return lo


def _figures(session: Session, accs: list[int], window: dict[str, int]) -> dict[str, int]:
    rows = session.connection().execute(text(
        f"SELECT {MONTH_CATEGORY_SQL} AS cat, COALESCE(SUM(e.amount), 0), COUNT(*) "  # noqa: S608 - constants only
        "FROM ledger_entries e JOIN ledger_journals j ON j.id = e.journal_id "
        f"WHERE {MEMBER_SQL} GROUP BY 1").bindparams(bindparam("accs", expanding=True)),
        _params(accs, window)).all()
    out = dict.fromkeys(FIGURES, 0)
    count = 0
    for cat, amount, n in rows:
        count += int(n)
        if cat == "internal":
            out["adjustments"] += -int(amount)  # zero unless a journal is malformed
        else:
            out[cat] += -int(amount)  # the creator's sign: what they are owed
    out["_lines"] = count
    return out


def _opening(session: Session, accs: list[int], final: dict[str, Statement],
             period: str) -> int:
    prev = final.get(shift(period, -1))
    if prev is not None:
        return prev.closing_balance
    if not accs:
        return 0
    window = _window(final, period)
    window["lo"] = max(window["lo"], scan_floor(session, accs, window["start"]))
    # One statement, one snapshot: the balance now, less what belongs to this month or later.
    row = session.connection().execute(text(
        "SELECT (SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE id IN :accs), "
        "(SELECT COALESCE(SUM(CASE WHEN j.effective_at < :start AND e.id <= :mid THEN 0 "
        "ELSE e.amount END), 0) FROM ledger_entries e "
        "JOIN ledger_journals j ON j.id = e.journal_id "
        "WHERE e.account_id IN :accs AND e.id > :lo)").bindparams(
            bindparam("accs", expanding=True)), _params(accs, window)).one()
    return -(int(row[0]) - int(row[1]))


def compute(session: Session, creator_id: int, currency: str, period: str,
            final: dict[str, Statement] | None = None) -> dict[str, Any]:
    """The month's figures, whether final or not (from the ledger)."""
    final = finals(session, creator_id, currency) if final is None else final
    accs = balance_accounts(session, creator_id, currency)
    window = _window(final, period)
    window["lo"] = max(window["lo"], scan_floor(session, accs, window["start"]))
    figures = _figures(session, accs, window) if accs else {**dict.fromkeys(FIGURES, 0),
                                                           "_lines": 0}
    count = figures.pop("_lines")
    opening = _opening(session, accs, final, period)
    return {"opening_balance": opening, **figures,
            "closing_balance": opening + sum(figures.values()), "line_count": count}


def lines(session: Session, creator_id: int, currency: str, period: str, *,
          limit: int | None = None, final: dict[str, Statement] | None = None
          ) -> Iterator[dict[str, Any]]:
    """The month's ledger lines, oldest first."""
    final = finals(session, creator_id, currency) if final is None else final
    accs = balance_accounts(session, creator_id, currency)
    if not accs:
        return
    window = _window(final, period)
    window["lo"] = max(window["lo"], scan_floor(session, accs, window["start"]))
    purposes = dict(session.execute(select(LedgerAccount.id, LedgerAccount.purpose).where(
        LedgerAccount.id.in_(accs))).tuples().all())
    sql = (f"SELECT e.id, e.journal_id, e.amount, j.kind, {MONTH_CATEGORY_SQL}, "  # noqa: S608 - constants only
           "j.effective_at, j.created, j.source_type, j.source_id, e.account_id, j.key "
           "FROM ledger_entries e JOIN ledger_journals j ON j.id = e.journal_id "
           f"WHERE {MEMBER_SQL} ORDER BY e.id" + (" LIMIT :n" if limit else ""))
    params = _params(accs, window)
    if limit:
        params["n"] = limit
    result = session.connection().execute(
        text(sql).bindparams(bindparam("accs", expanding=True))
        .execution_options(stream_results=limit is None), params)
    for r in result:
        yield {
            "id": public_id(PREFIXES["entry"], int(r[0])),
            "journal": public_id(PREFIXES["journal"], int(r[1])),
            "effective_at": int(r[5]), "created": int(r[6]),
            "kind": r[3], "category": r[4], "account": purposes.get(int(r[9])),
            "amount": -int(r[2]), "currency": currency,
            "source": {"type": r[7], "id": r[8]} if r[7] else None,
            "late": int(r[5]) < window["start"],
        }


def checksum(period: str, currency: str, figures: dict[str, Any],
             line_iter: Iterator[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    h.update(f"{period}|{currency}|{figures['opening_balance']}|".encode())
    h.update("|".join(str(figures[k]) for k in FIGURES).encode())
    h.update(f"|{figures['closing_balance']}\n".encode())
    for line in line_iter:
        h.update(f"{line['id']}:{line['amount']}:{line['category']}\n".encode())
    return h.hexdigest()


def statement(session: Session, creator: Creator, currency: str, period: str, *,
              lines_limit: int = 100, now: int | None = None) -> dict[str, Any]:
    """The statement as the API answers it (``lines``: the first ``lines_limit``; the CSV
    has them all)."""
    check_period(creator, period, now)
    final = finals(session, creator.id, currency)
    row = final.get(period)
    if row is not None:
        figures: dict[str, Any] = {"opening_balance": row.opening_balance, **row.figures,
                                   "closing_balance": row.closing_balance,
                                   "line_count": row.line_count}
    else:
        figures = compute(session, creator.id, currency, period, final)
    shown = list(lines(session, creator.id, currency, period, limit=lines_limit, final=final))
    return {
        "object": "statement", "creator": creator.public_id, "period": period,
        "currency": currency, "status": "final" if row is not None else "open",
        "checksum": row.checksum if row is not None else None,
        **{k: figures[k] for k in ("opening_balance", *FIGURES, "closing_balance",
                                   "line_count")},
        "lines": shown, "has_more_lines": figures["line_count"] > len(shown),
    }


def check_period(creator: Creator, period: str, now: int | None = None) -> None:
    """404 for a malformed month or one that has not started yet."""
    now = now_ts() if now is None else now
    if parse_period(period) is None or period > period_of(now):
        raise NotFound(f"No statement for {period!r} (months are YYYY-MM, up to this one).",
                       code="statement_not_found")


def list_statements(session: Session, creator: Creator, *, limit: int = 20,
                    starting_after: str | None = None, currency: str | None = None,
                    now: int | None = None) -> tuple[list[dict[str, Any]], bool]:
    now = now_ts() if now is None else now
    first, last = period_of(creator.created), period_of(now)
    curs = [currency] if currency else currencies(session, creator)
    status = {(s.period, s.currency): "final" for s in session.scalars(
        select(Statement).where(Statement.creator_id == creator.id))}
    out: list[dict[str, Any]] = []
    period = last if starting_after is None else shift(starting_after, -1)
    while period >= first and len(out) <= limit:
        for cur in curs:
            out.append({"object": "statement_summary", "period": period, "currency": cur,
                        "status": status.get((period, cur), "open")})
        period = shift(period, -1)
    return out[:limit], len(out) > limit


# ----------------------------------------------------------------------------- freezing


def freeze(session: Session, creator: Creator, currency: str, period: str) -> Statement:
    """Make ``period`` final (it must have ended, and the month before be final unless it is
    the creator's first). Idempotent."""
    final = finals(session, creator.id, currency)
    if period in final:
        return final[period]
    accs = balance_accounts(session, creator.id, currency)
    # Lock the accounts: a posting in flight either committed (its entries are below the
    # watermark) or waits and draws a higher entry id.
    rows = session.execute(for_update(session, select(LedgerAccount.last_entry_id).where(
        LedgerAccount.id.in_(accs or [-1])))).all()
    watermark = max([int(r[0]) for r in rows] or [0])
    prev = final.get(shift(period, -1))
    watermark = max(watermark, prev.through_entry_id if prev is not None else 0)
    provisional = Statement(creator_id=creator.id, period=period, currency=currency,
                            opening_balance=0, closing_balance=0, figures={}, line_count=0,
                            through_entry_id=watermark, checksum="")
    final_with = {**final, period: provisional}
    figures = compute(session, creator.id, currency, period, final_with)
    provisional.opening_balance = figures["opening_balance"]
    provisional.closing_balance = figures["closing_balance"]
    provisional.figures = {k: figures[k] for k in FIGURES}
    provisional.line_count = figures["line_count"]
    provisional.checksum = checksum(period, currency, figures, lines(
        session, creator.id, currency, period, final=final_with))
    provisional.created = now_ts()
    session.add(provisional)
    session.flush()
    return provisional


def freeze_due(session: Session, creator: Creator, *, through: str | None = None,
               now: int | None = None) -> int:
    """Freeze every ended month up to ``through`` (default: last month), in order."""
    now = now_ts() if now is None else now
    last_ended = shift(period_of(now), -1)
    through = last_ended if through is None or through > last_ended else through
    made = 0
    for currency in currencies(session, creator):
        final = finals(session, creator.id, currency)
        period = shift(max(final), 1) if final else period_of(creator.created)
        while period <= through:
            freeze(session, creator, currency, period)
            made += 1
            period = shift(period, 1)
    return made


def freeze_all(session_factory: Callable[[], Any], *, through: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> int:
    """Every creator's ended months, one transaction per creator."""
    with session_factory() as session:
        ids = list(session.scalars(select(Creator.id).order_by(Creator.id)))
    made = 0
    for i, cid in enumerate(ids, 1):
        with session_factory() as session:
            creator = session.get(Creator, cid)
            if creator is not None:
                made += freeze_due(session, creator, through=through)
        if progress is not None:
            progress(i, len(ids))
    return made
