"""The SQLite writer (development and the default test database).

Writers are serialised there (``BEGIN IMMEDIATE``), so this is plain: insert the new
journals, number the entries from ``MAX(id)``, update the creator rows, insert the entries.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from payments.clock import now_ts
from payments.errors import NotFound
from payments.ledger.accounts import AccountInfo
from payments.ledger.errors import already_reversed, insufficient
from payments.ledger.journals import PostedJournal, Prepared, posted_journal


def write(conn: Connection, unique: list[Prepared]) -> dict[str, PostedJournal]:
    """Write the new journals among ``unique`` (keys not posted yet); answer them by key."""
    inserted = _insert_journals(conn, unique)
    new = [p for p in unique if p.spec.key in inserted]
    return {j.key: j for j in _write_entries(conn, new, inserted)} if new else {}


def _insert_journals(conn: Connection, unique: list[Prepared]) -> dict[str, int]:
    """SQLite: insert the journals that are new; answer {key: journal id}."""
    created = now_ts()
    out: dict[str, int] = {}
    for start in range(0, len(unique), 2000):
        chunk = unique[start : start + 2000]
        params: dict[str, Any] = {"c": created}
        rows = []
        for i, p in enumerate(chunk):
            params.update({
                f"k{i}": p.spec.key, f"t{i}": p.spec.kind, f"st{i}": p.source_type,
                f"si{i}": p.source_id, f"e{i}": p.effective_at, f"r{i}": p.spec.reverses_id,
                f"n{i}": len(p.legs),
            })
            rows.append(f"(:k{i}, :t{i}, :st{i}, :si{i}, :e{i}, max(:c, :e{i}), :r{i}, :n{i})")
        sql = ("INSERT INTO ledger_journals (key, kind, source_type, source_id, effective_at, "  # noqa: S608
               f"created, reverses_id, leg_count) VALUES {', '.join(rows)} "
               "ON CONFLICT (key) DO NOTHING RETURNING id, key")
        try:
            result = conn.execute(text(sql), params)
        except IntegrityError as exc:
            if "reverses_id" in str(exc.orig):
                raise already_reversed() from None
            raise
        for row in result:
            out[row[1]] = int(row[0])
    return out


def _write_entries(
    conn: Connection, new: list[Prepared], inserted: dict[str, int]
) -> list[PostedJournal]:
    """SQLite: writers are serialised (BEGIN IMMEDIATE), so entry ids are simply max + 1."""
    flat = [(ji, info, amount) for ji, p in enumerate(new) for info, amount in p.legs]
    base = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM ledger_entries")).scalar()
               or 0)
    ids = list(range(base + 1, base + 1 + len(flat)))
    after: list[int | None] = [None] * len(flat)
    by_account = _running_positions(flat)
    try:
        _update_running(conn, flat, ids, after, by_account)
    except IntegrityError as exc:
        if "non_negative" in str(exc.orig) or "CHECK" in str(exc.orig):
            raise insufficient() from None
        raise
    for start in range(0, len(flat), 5000):
        params: dict[str, Any] = {}
        rows = []
        for i in range(start, min(start + 5000, len(flat))):
            ji, info, amount = flat[i]
            params.update({
                f"i{i}": ids[i], f"j{i}": inserted[new[ji].spec.key], f"a{i}": info.id,
                f"m{i}": amount, f"c{i}": info.currency, f"b{i}": after[i],
            })
            rows.append(f"(:i{i}, :j{i}, :a{i}, :m{i}, :c{i}, :b{i})")
        conn.execute(
            text("INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency, "  # noqa: S608
                 f"balance_after) VALUES {', '.join(rows)}"),
            params,
        )
    return [posted_journal(p, inserted[p.spec.key]) for p in new]


def _running_positions(flat: list[tuple[int, AccountInfo, int]]) -> dict[int, list[int]]:
    by_account: dict[int, list[int]] = defaultdict(list)
    for idx, (_, info, _amt) in enumerate(flat):
        if info.running:
            by_account[info.id].append(idx)
    return by_account


def _update_running(
    conn: Connection,
    flat: list[tuple[int, AccountInfo, int]],
    ids: list[int],
    after: list[int | None],
    by_account: dict[int, list[int]],
) -> None:
    """SQLite: apply the deltas to the creator accounts; fill each entry's balance_after."""
    for acc in sorted(by_account):
        delta = sum(flat[i][2] for i in by_account[acc])
        last = max(ids[i] for i in by_account[acc])
        updated = conn.execute(
            text("UPDATE ledger_accounts SET balance = balance + :d, last_entry_id = :e "
                 "WHERE id = :id RETURNING balance"),
            {"d": delta, "e": last, "id": acc},
        ).scalar_one_or_none()
        if updated is None:
            raise NotFound("A creator ledger account is missing.", code="account_not_found")
        running = int(updated) - delta
        for i in by_account[acc]:
            running += flat[i][2]
            after[i] = running
