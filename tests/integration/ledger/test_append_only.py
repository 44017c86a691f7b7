"""PostgreSQL refuses UPDATE and DELETE on journals and entries (the append-only trigger)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

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
