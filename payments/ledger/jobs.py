"""Periodic jobs (beat tasks ``ledger.checkpoint`` and ``ledger.mature``) and their state.

``checkpoint`` rolls the platform accounts' balances forward to a safe horizon; ``mature_due``
moves earnings out of the hold period. Each runs one at a time (advisory locks) and keeps its
place in ``ledger_cursors``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    bindparam,
    cast,
    exists,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from payments.clock import now_ts
from payments.ledger._pg import POST_LOCK
from payments.ledger.accounts import CREATOR, account_by_id, creator_account
from payments.ledger.journals import Leg
from payments.ledger.models import Entry, Journal, LedgerAccount
from payments.ledger.posting import post
from payments.ledger.reads import pending_for_source

# Advisory lock keys (PostgreSQL), next to _pg.POST_LOCK (0x1ED6E7_0001): one runner each.
MATURE_LOCK = 0x1ED6E7_0002
CHECKPOINT_LOCK = 0x1ED6E7_0003
SECONDS_PER_DAY = 86_400


def _safe_horizon(session: Session) -> int | None:
    """An entry id H such that every entry with id <= H is committed (or visible to us).

    PostgreSQL: take the posting lock exclusively for an instant (waiting out in-flight
    postings, which hold it shared from their first statement), read MAX(id), let go. Gives
    up after a short lock_timeout (None) rather than stall postings. SQLite: writers are
    serialised, and we hold the write lock.
    """
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM ledger_entries"))
                   .scalar_one())
    try:
        with session.begin_nested():
            conn.execute(text("SET LOCAL lock_timeout = '800ms'"))
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": POST_LOCK})
    except DBAPIError:
        return None
    try:
        return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM ledger_entries"))
                   .scalar_one())
    finally:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": POST_LOCK})
        conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))


def _single_flight(session: Session, lock: int) -> bool:
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock})
                .scalar_one())


def checkpoint(session: Session) -> int:
    """Roll the platform accounts' checkpoints forward to a safe horizon; answer how many."""
    if not _single_flight(session, CHECKPOINT_LOCK):
        return 0
    horizon = _safe_horizon(session)
    if horizon is None:
        return 0
    result = session.connection().execute(
        text("UPDATE ledger_accounts SET balance = balance + COALESCE((SELECT SUM(e.amount) "
             "FROM ledger_entries e WHERE e.account_id = ledger_accounts.id "
             "AND e.id > ledger_accounts.last_entry_id AND e.id <= :h), 0), last_entry_id = :h "
             "WHERE running = false AND last_entry_id < :h"),
        {"h": horizon},
    )
    return int(result.rowcount)


def _cursor(session: Session, name: str) -> int:
    value = session.connection().execute(
        text("SELECT value FROM ledger_cursors WHERE name = :n"), {"n": name}
    ).scalar()
    return int(value or 0)


def _set_cursor(session: Session, name: str, value: int) -> None:
    conn = session.connection()
    updated = conn.execute(
        text("UPDATE ledger_cursors SET value = :v WHERE name = :n"), {"n": name, "v": value}
    )
    if not updated.rowcount:
        conn.execute(text("INSERT INTO ledger_cursors (name, value) VALUES (:n, :v)"),
                     {"n": name, "v": value})


def _inline(value: Any) -> ColumnElement[Any]:
    # Constants in the SQL text, not parameters: the scan's statement stays as it was written
    # by hand (PostgreSQL plans it knowing them).
    return literal(value, literal_execute=True)


def mature_due(
    session: Session,
    *,
    default_hold_days: int = 7,
    hold_days: Select[int, int | None] | None = None,
    now: int | None = None,
    limit: int = 1000,
) -> int:
    """Move matured earnings from ``pending`` to ``available``; answer how many journals.

    A journal that credits a creator's ``pending`` matures at ``effective_at + hold`` into a
    ``maturation`` journal keyed ``mature:{journal id}:{account id}``, with the same source
    and that effective time. The hold is ``default_hold_days`` unless ``hold_days`` gives the
    creator their own: a query of rows ``(creator id, days)`` (NULL days: the default), joined
    into the scan. Where holds are kept is not the ledger's business; ``service.mature_due``
    passes the creators' (``service.creator_hold_days``). It moves at most: the credit
    itself, what is still pending for its source (refunds and disputes before maturity carry
    the earning's source and debit pending), and the pending balance (maturation never takes
    pending below zero). Idempotent; one runner at a time.
    """
    if not _single_flight(session, MATURE_LOCK):
        return 0
    now = now_ts() if now is None else now
    cursor = _cursor(session, "mature")
    horizon = _safe_horizon(session)
    if horizon is None:
        return 0
    conn = session.connection()
    e = Entry.__table__.alias("e")
    a = LedgerAccount.__table__.alias("a")
    j = Journal.__table__.alias("j")
    m = Journal.__table__.alias("m")
    scan = e.join(a, a.c.id == e.c.account_id).join(j, j.c.id == e.c.journal_id)
    days: ColumnElement[Any] = bindparam("hd")
    if hold_days is not None:
        holds = hold_days.subquery("c")
        owner, own_days = list(holds.c)[:2]
        scan = scan.outerjoin(holds, owner == a.c.owner_id)
        days = func.coalesce(own_days, days)
    due = j.c.effective_at + days * _inline(SECONDS_PER_DAY)
    pending_credits = (
        e.c.id > bindparam("cur"), e.c.id <= bindparam("h"),
        a.c.owner_kind == _inline(CREATOR), a.c.purpose == _inline("pending"),
        e.c.amount < _inline(0), j.c.kind != _inline("maturation"),
    )
    matured_key = (_inline("mature:") + cast(e.c.journal_id, String) + _inline(":")
                   + cast(e.c.account_id, String))
    params = {"cur": cursor, "h": horizon, "hd": default_hold_days, "now": now}
    rows = conn.execute(
        select(e.c.id, e.c.journal_id, e.c.account_id, e.c.amount, j.c.source_type,
               j.c.source_id, a.c.owner_id, a.c.currency, due.label("due"))
        .select_from(scan)
        .where(*pending_credits, due <= bindparam("now"),
               ~exists().where(m.c.key == matured_key))
        .order_by(e.c.id)
        .limit(limit),
        params,
    ).all()
    first_not_due = conn.execute(
        select(func.min(e.c.id)).select_from(scan)
        .where(*pending_credits, due > bindparam("now")),
        params,
    ).scalar()
    posted = 0
    pg = conn.dialect.name == "postgresql"
    for _eid, jid, acc, amount, stype, sid, owner_id, cur, due in rows:
        lock = select(LedgerAccount.balance).where(LedgerAccount.id == acc)
        balance = int(conn.execute(lock.with_for_update() if pg else lock).scalar_one())
        credit_amount = -int(amount)
        owed = -balance
        if stype and sid:
            still = pending_for_source(session, int(owner_id), cur, (stype, sid))
        else:
            still = credit_amount
        move = min(credit_amount, still, owed)
        if move <= 0:
            continue
        post(
            session,
            f"mature:{jid}:{acc}",
            "maturation",
            [Leg(account_by_id(session, int(acc)), move),
             Leg(creator_account(int(owner_id), "available", cur), -move)],
            source=(stype, sid) if stype and sid else None,
            effective_at=int(due),
        )
        posted += 1
    if first_not_due is not None:
        new_cursor = int(first_not_due) - 1
        if len(rows) == limit:
            new_cursor = min(new_cursor, int(rows[-1][0]))
    else:
        new_cursor = int(rows[-1][0]) if len(rows) == limit else horizon
    if new_cursor > cursor:
        _set_cursor(session, "mature", new_cursor)
    return posted
