"""Reading balances and lines: what the API and the payout/refund flows ask the ledger.

Creator accounts are credit-normal liabilities, stored negative when the platform owes; the
creator-facing reads (``creator_balances``, ``creator_ledger``) answer positive numbers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from payments.ids import PREFIXES, public_id
from payments.ledger.accounts import (
    BALANCE_PURPOSES,
    CREATOR,
    PLATFORM,
    AccountLike,
    as_info,
    creator_account,
)
from payments.ledger.journals import Source

_ENTRY, _JOURNAL, _ACCOUNT = PREFIXES["entry"], PREFIXES["journal"], PREFIXES["account"]


def account_balance(session: Session, account: AccountLike) -> int:
    """The signed (debit-positive) current balance of any account."""
    info = as_info(session, account)
    return int(session.connection().execute(
        text("SELECT a.balance + COALESCE((SELECT SUM(e.amount) FROM ledger_entries e "
             "WHERE e.account_id = a.id AND e.id > a.last_entry_id), 0) "
             "FROM ledger_accounts a WHERE a.id = :id"),
        {"id": info.id},
    ).scalar_one())


def creator_balances(session: Session, creator_id: int) -> list[dict[str, Any]]:
    """``[{currency, pending, available, reserved, in_transit, paid_out}]``, positive = owed.

    One indexed lookup of the creator's account rows, whatever the number of entries.
    """
    rows = session.connection().execute(
        text("SELECT currency, purpose, normal, balance FROM ledger_accounts "
             "WHERE owner_kind = 'creator' AND owner_id = :id"),
        {"id": creator_id},
    )
    out: dict[str, dict[str, Any]] = {}
    for cur, purpose, normal, balance in rows:
        line = out.setdefault(cur, {"currency": cur, **dict.fromkeys(BALANCE_PURPOSES, 0)})
        if purpose in BALANCE_PURPOSES:
            line[purpose] = -int(balance) if normal == "credit" else int(balance)
    return [out[c] for c in sorted(out)]


def source_balance(session: Session, account: AccountLike, source: Source) -> int:
    """Signed sum of the account's entries whose journal has ``source``."""
    info = as_info(session, account)
    return int(session.connection().execute(
        text("SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e "
             "JOIN ledger_journals j ON j.id = e.journal_id "
             "WHERE j.source_type = :st AND j.source_id = :si AND e.account_id = :a"),
        {"st": source[0], "si": source[1], "a": info.id},
    ).scalar_one())


def pending_for_source(session: Session, creator_id: int, currency: str, source: Source) -> int:
    """What of ``source``'s earnings is still pending (positive = owed, not yet matured).

    A refund or dispute of an earning debits ``pending`` up to this and ``available`` for
    the rest, carrying the earning's source, so maturation never matures money gone.
    """
    ref = creator_account(creator_id, "pending", currency)
    return -source_balance(session, ref, source)


def creator_ledger(
    session: Session,
    creator_id: int,
    *,
    limit: int = 20,
    starting_after: int | None = None,
    currency: str | None = None,
    effective_gte: int | None = None,
    effective_lt: int | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """The creator's own entries, newest first, with ``balance_after`` (creator's sign)."""
    conn = session.connection()
    accounts = {
        int(r[0]): (r[1], r[2])
        for r in conn.execute(
            text("SELECT id, purpose, normal FROM ledger_accounts WHERE owner_kind = 'creator' "  # noqa: S608 - placeholders only
                 "AND owner_id = :id" + (" AND currency = :cur" if currency else "")),
            {"id": creator_id, "cur": currency},
        )
    }
    if not accounts:
        return [], False
    where = ["e.account_id IN :accs"]
    params: dict[str, Any] = {"accs": list(accounts), "n": limit + 1}
    if starting_after is not None:
        where.append("e.id < :after")
        params["after"] = starting_after
    if effective_gte is not None:
        where.append("j.effective_at >= :gte")
        params["gte"] = effective_gte
    if effective_lt is not None:
        where.append("j.effective_at < :lt")
        params["lt"] = effective_lt
    rows = conn.execute(
        text("SELECT e.id, e.journal_id, e.account_id, e.amount, e.currency, e.balance_after, "  # noqa: S608 - placeholders only
             "j.kind, j.created, j.effective_at, j.source_type, j.source_id "
             "FROM ledger_entries e JOIN ledger_journals j ON j.id = e.journal_id "
             f"WHERE {' AND '.join(where)} ORDER BY e.id DESC LIMIT :n")
        .bindparams(bindparam("accs", expanding=True)),
        params,
    ).all()
    lines = []
    for r in rows[:limit]:
        purpose, normal = accounts[int(r[2])]
        sign = -1 if normal == "credit" else 1
        lines.append({
            "id": public_id(_ENTRY, int(r[0])),
            "object": "ledger_entry",
            "created": int(r[7]),
            "effective_at": int(r[8]),
            "journal": public_id(_JOURNAL, int(r[1])),
            "kind": r[6],
            "amount": sign * int(r[3]),
            "currency": r[4],
            "account": purpose,
            "balance_after": None if r[5] is None else sign * int(r[5]),
            "source": {"type": r[9], "id": r[10]} if r[9] else None,
        })
    return lines, len(rows) > limit


def trial_balance(session: Session) -> dict[str, Any]:
    """Every account's current signed balance (debit positive) and the totals per currency."""
    rows = session.connection().execute(
        text("SELECT a.id, a.owner_kind, a.owner_id, a.purpose, a.currency, "
             "a.balance + COALESCE((SELECT SUM(e.amount) FROM ledger_entries e "
             "WHERE e.account_id = a.id AND e.id > a.last_entry_id), 0) "
             "FROM ledger_accounts a ORDER BY a.currency, a.owner_kind DESC, a.owner_id, "
             "a.purpose")
    ).all()
    creators = _creator_public_ids(session, {int(r[2]) for r in rows if r[1] == CREATOR})
    totals: dict[str, int] = defaultdict(int)
    accounts = []
    for acc_id, kind, owner_id, purpose, cur, balance in rows:
        owner = PLATFORM if kind == PLATFORM else creators.get(int(owner_id), str(owner_id))
        accounts.append({
            "account": public_id(_ACCOUNT, int(acc_id)),
            "owner": owner,
            "purpose": purpose,
            "currency": cur,
            "balance": int(balance),
        })
        totals[cur] += int(balance)
    return {
        "accounts": accounts,
        "totals": [{"currency": c, "total": totals[c]} for c in sorted(totals)],
    }


def _creator_public_ids(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    from payments.accounts.models import Creator

    out: dict[int, str] = {}
    id_list = sorted(ids)
    for i in range(0, len(id_list), 1000):
        for cid, pid in session.connection().execute(
            select(Creator.id, Creator.public_id).where(Creator.id.in_(id_list[i : i + 1000]))
        ):
            out[int(cid)] = pid
    return out
