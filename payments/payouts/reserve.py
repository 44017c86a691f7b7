"""The reserve: a share of each matured credit held in ``reserved`` for a while.

``hold(session, rate)`` looks at ``maturation`` journals (pending -> available) newer than its
cursor and moves ``rate`` of each into ``reserved`` (journal ``reserve:{journal id}``), but
never more than is available: a negative ``available`` (a refund or dispute after a payout)
is recovered from later credits first. ``release(session, days)`` moves each reserve back to
``available`` once it is ``days`` old (``reserve_release:{journal id}``). Both carry the
credit's source and are idempotent on their keys; the statement counts neither (they move
money between the creator's own balance accounts).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from payments.clock import now_ts
from payments.ledger import service as ledger
from payments.ledger.models import LedgerCursor
from payments.money import split_fee
from payments.payouts.service import available

HOLD_CURSOR = "payouts.reserve.hold"
RELEASE_CURSOR = "payouts.reserve.release"


def _cursor(session: Session, name: str) -> LedgerCursor:
    row = session.get(LedgerCursor, name, with_for_update=True)
    if row is None:
        row = LedgerCursor(name=name, value=0)
        session.add(row)
        session.flush()
    return row


def _creator_credits(session: Session, kind: str, after: int, limit: int) -> list[tuple[
        int, int, str, int, str | None, str | None, int]]:
    """(journal id, creator id, currency, amount credited to available, source, effective)."""
    rows = session.connection().execute(text(
        "SELECT j.id, a.owner_id, a.currency, -e.amount, j.source_type, j.source_id, "
        "j.effective_at FROM ledger_journals j "
        "JOIN ledger_entries e ON e.journal_id = j.id "
        "JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE j.kind = :kind AND j.id > :after AND a.owner_kind = 'creator' "
        "AND a.purpose = 'available' AND e.amount < 0 ORDER BY j.id LIMIT :n"),
        {"kind": kind, "after": after, "n": limit}).all()
    return [(int(r[0]), int(r[1]), r[2], int(r[3]), r[4], r[5], int(r[6])) for r in rows]


def hold(session: Session, rate: Decimal, *, limit: int = 1000) -> int:
    cursor = _cursor(session, HOLD_CURSOR)
    rows = _creator_credits(session, "maturation", cursor.value, limit)
    posted = 0
    for jid, creator_id, currency, amount, st, si, eff in rows:
        cursor.value = jid
        share, _ = split_fee(amount, rate) if rate > 0 else (0, amount)
        take = min(share, max(0, available(session, creator_id, currency, lock=True)))
        if take <= 0:
            continue
        ledger.post(session, f"reserve:{jid}", "reserve", [
            ledger.debit(ledger.creator_account(creator_id, "available", currency), take),
            ledger.credit(ledger.creator_account(creator_id, "reserved", currency), take),
        ], source=(st, si) if st and si else None, effective_at=eff)
        posted += 1
    session.flush()
    return posted


def release(session: Session, days: int, *, now: int | None = None,
            limit: int = 1000) -> int:
    now = now_ts() if now is None else now
    cursor = _cursor(session, RELEASE_CURSOR)
    rows = session.connection().execute(text(
        "SELECT j.id, a.owner_id, a.currency, -e.amount, j.source_type, j.source_id, "
        "j.effective_at FROM ledger_journals j "
        "JOIN ledger_entries e ON e.journal_id = j.id "
        "JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE j.kind = 'reserve' AND j.id > :after AND a.purpose = 'reserved' "
        "AND e.amount < 0 ORDER BY j.id LIMIT :n"),
        {"after": cursor.value, "n": limit}).all()
    released = 0
    for jid, creator_id, currency, amount, st, si, eff in rows:
        if int(eff) + days * 86400 > now:
            break  # reserves are made in time order: the rest are younger
        cursor.value = int(jid)
        ledger.post(session, f"reserve_release:{jid}", "reserve_release", [
            ledger.debit(ledger.creator_account(int(creator_id), "reserved", currency),
                         int(amount)),
            ledger.credit(ledger.creator_account(int(creator_id), "available", currency),
                          int(amount)),
        ], source=(st, si) if st and si else None, effective_at=int(eff) + days * 86400)
        released += 1
    session.flush()
    return released


def reserved_total(session: Session, creator_id: int, currency: str) -> int:
    from payments.ledger.models import LedgerAccount

    bal = session.scalar(select(LedgerAccount.balance).where(
        LedgerAccount.owner_kind == "creator", LedgerAccount.owner_id == creator_id,
        LedgerAccount.purpose == "reserved", LedgerAccount.currency == currency))
    return -int(bal or 0)
