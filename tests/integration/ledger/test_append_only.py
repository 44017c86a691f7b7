"""The database's own guards on the books.

PostgreSQL refuses UPDATE and DELETE on journals and entries (the append-only trigger), and
checks every INSERT into entries as a whole (the journals exist, are complete, balance).
SQLite refuses an entry whose journal does not exist.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from payments.errors import NotFound
from payments.ledger import service as ledger
from payments.ledger.service import creator_account, credit, debit, platform_account


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_entries SET amount = amount + 1",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_journals SET kind = 'other'",
        "DELETE FROM ledger_journals",
    ],
)
def test_trigger_rejects_update_and_delete(db_session: Session, sql: str) -> None:
    ledger.post(db_session, "ao1", "tip", [debit(platform_account("stripe_balance", "usd"), 5),
                                            credit(creator_account(1, "pending", "usd"), 5)])
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text(sql))
    counts = db_session.execute(text(
        "SELECT (SELECT COUNT(*) FROM ledger_journals), (SELECT SUM(amount) FROM ledger_entries),"
        " (SELECT COUNT(*) FROM ledger_entries)")).one()
    assert tuple(counts) == (1, 0, 2)


def _posted(session: Session) -> int:
    return ledger.post(session, "ec1", "tip", [
        debit(platform_account("stripe_balance", "usd"), 5),
        credit(creator_account(1, "pending", "usd"), 5)]).id


def _entries(session: Session) -> tuple[int, int]:
    n, total = session.execute(text(
        "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger_entries")).one()
    return int(n), int(total)


def _new_journal(session: Session, legs: int) -> int:
    return int(session.execute(text(
        "INSERT INTO ledger_journals (key, kind, effective_at, created, leg_count) "
        "VALUES ('manual', 'adjustment', 1, 1, :n) RETURNING id"), {"n": legs}).scalar_one())


def _insert_entries(session: Session, rows: list[tuple[int, int, int]]) -> None:
    values = ", ".join(f"(:j{i}, :a{i}, :m{i}, 'usd')" for i in range(len(rows)))
    params = {f"{k}{i}": v for i, row in enumerate(rows) for k, v in zip("jam", row, strict=True)}
    sql = f"INSERT INTO ledger_entries (journal_id, account_id, amount, currency) VALUES {values}"  # noqa: S608 - placeholders only
    session.execute(text(sql), params)


def test_entry_for_a_missing_journal_is_refused(db_session: Session) -> None:
    jid = _posted(db_session)
    before = _entries(db_session)
    with pytest.raises(DBAPIError, match="journal"), db_session.begin_nested():
        _insert_entries(db_session, [(jid + 1000, 1, 7), (jid + 1000, 2, -7)])
    assert _entries(db_session) == before


@pytest.mark.postgres
@pytest.mark.parametrize("rows", [
    pytest.param([(1, 9), (2, -8)], id="unbalanced"),
    pytest.param([(1, 9)], id="one-of-two-legs"),
    pytest.param([(1, 9), (2, -4), (3, -4), (4, -1)], id="more-legs-than-leg_count"),
])
def test_entries_insert_must_complete_and_balance_its_journals(
    db_session: Session, rows: list[tuple[int, int]]
) -> None:
    _posted(db_session)
    before = _entries(db_session)
    with pytest.raises(DBAPIError, match="unbalanced or not complete"), \
            db_session.begin_nested():
        jid = _new_journal(db_session, 2)
        _insert_entries(db_session, [(jid, a, m) for a, m in rows])
    assert _entries(db_session) == before
    # The same journal written whole and balanced goes in.
    jid = _new_journal(db_session, 2)
    _insert_entries(db_session, [(jid, 1, 9), (jid, 2, -9)])
    assert _entries(db_session) == (before[0] + 2, 0)


def test_a_missing_creator_account_is_not_found_and_writes_nothing(db_session: Session) -> None:
    ghost = ledger.AccountInfo(987_654, "creator", 42, "pending", "usd", "credit", True, True)
    before = _entries(db_session)
    for legs in (
        [debit(platform_account("stripe_balance", "usd"), 5), credit(ghost, 5)],  # one journal
        [debit(platform_account("stripe_balance", "usd"), 5), credit(ghost, 3),
         credit(creator_account(1, "pending", "usd"), 2)],  # two creator legs: the batch path
    ):
        with pytest.raises(NotFound), db_session.begin_nested():
            ledger.post(db_session, f"ghost{len(legs)}", "tip", legs)
        assert _entries(db_session) == before
