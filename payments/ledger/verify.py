"""``verify``: recompute the books from the entries and report any drift.

Read-only, and each check is one statement (one snapshot), so it runs while postings go on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from payments.ledger.accounts import PLATFORM


@dataclass
class Drift:
    account_id: int
    name: str
    stored: int
    from_entries: int
    what: str


@dataclass
class VerifyReport:
    accounts: int = 0
    entries: int = 0
    journals: int = 0
    drifts: list[Drift] = field(default_factory=list)
    unbalanced_journals: list[int] = field(default_factory=list)
    bad_leg_counts: list[int] = field(default_factory=list)
    orphan_journal_ids: list[int] = field(default_factory=list)  # entries whose journal is gone
    currency_mismatches: int = 0
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (
            self.drifts
            or self.unbalanced_journals
            or self.bad_leg_counts
            or self.orphan_journal_ids
            or self.currency_mismatches
            or any(self.totals.values())
        )


def verify(session: Session, progress: Any = None) -> VerifyReport:
    """Recompute every balance from the entries and check the books.

    * running (creator) accounts: ``balance`` equals the sum of all their entries, and the
      newest entry's ``balance_after`` equals ``balance``;
    * platform accounts: the checkpoint equals the sum of entries up to ``last_entry_id``;
    * every journal sums to zero per currency and has ``leg_count`` entries; every entry's
      journal exists;
    * the whole ledger sums to zero per currency; every entry is in its account's currency.

    Each check is one statement, so it reads one consistent snapshot while postings go on.
    """
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    if pg:
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
    step = progress or (lambda _msg: None)
    report = VerifyReport()
    step("accounts")
    rows = conn.execute(text(
        "SELECT a.id, a.owner_kind, a.owner_id, a.purpose, a.currency, a.running, a.balance, "
        "a.last_entry_id, COALESCE(s.total, 0), COALESCE(s.upto, 0), COALESCE(s.n, 0), "
        "COALESCE(s.mismatched, 0), "
        "(SELECT le.balance_after FROM ledger_entries le WHERE le.id = a.last_entry_id) "
        "FROM ledger_accounts a LEFT JOIN ("
        "  SELECT e.account_id, SUM(e.amount) AS total, "
        "  SUM(CASE WHEN e.id <= x.last_entry_id THEN e.amount ELSE 0 END) AS upto, "
        "  COUNT(*) AS n, SUM(CASE WHEN e.currency <> x.currency THEN 1 ELSE 0 END) AS mismatched"
        "  FROM ledger_entries e JOIN ledger_accounts x ON x.id = e.account_id "
        "  GROUP BY e.account_id) s ON s.account_id = a.id"
    )).all()
    totals: dict[str, int] = defaultdict(int)
    for (acc_id, kind, owner_id, purpose, cur, running, balance, last, total, upto, n,
         mismatched, last_after) in rows:
        report.accounts += 1
        report.entries += int(n)
        report.currency_mismatches += int(mismatched)
        totals[cur] += int(total)
        info_name = (f"{PLATFORM if kind == PLATFORM else 'creator:' + str(owner_id)}:"
                     f"{purpose}:{cur}")
        if running:
            if int(balance) != int(total):
                report.drifts.append(Drift(int(acc_id), info_name, int(balance), int(total),
                                           "running balance"))
            elif int(last) and (last_after is None or int(last_after) != int(balance)):
                report.drifts.append(Drift(
                    int(acc_id), info_name, int(balance),
                    int(last_after) if last_after is not None else 0, "balance_after"))
        elif int(balance) != int(upto):
            report.drifts.append(Drift(int(acc_id), info_name, int(balance), int(upto),
                                       "checkpoint"))
    report.totals = dict(sorted(totals.items()))
    step("journals")
    # SQLite has no FULL JOIN before 3.39: the orphans are a second, anti-join query there.
    journals_sql = (
        "SELECT j.id, j.leg_count, s.n, s.bad, s.journal_id FROM ledger_journals j {join} ("
        "  SELECT journal_id, SUM(n) AS n, MAX(bad) AS bad FROM ("
        "    SELECT journal_id, COUNT(*) AS n, "
        "    CASE WHEN SUM(amount) <> 0 THEN 1 ELSE 0 END AS bad "
        "    FROM ledger_entries GROUP BY journal_id, currency) x "
        "  GROUP BY journal_id) s ON s.journal_id = j.id "
        "WHERE j.id IS NULL OR s.n IS NULL OR s.n <> j.leg_count OR s.bad = 1"
    )
    journal_rows = conn.execute(
        text(journals_sql.format(join="FULL JOIN" if pg else "LEFT JOIN")))
    if not pg:
        orphans = conn.execute(text(
            "SELECT DISTINCT e.journal_id FROM ledger_entries e WHERE NOT EXISTS "
            "(SELECT 1 FROM ledger_journals j WHERE j.id = e.journal_id)")).all()
        report.orphan_journal_ids.extend(int(r[0]) for r in orphans)
    for jid, legs, n, bad, entries_jid in journal_rows:
        if jid is None:
            report.orphan_journal_ids.append(int(entries_jid))
            continue
        if bad:
            report.unbalanced_journals.append(int(jid))
        if n is None or int(n) != int(legs):
            report.bad_leg_counts.append(int(jid))
    report.journals = int(conn.execute(text("SELECT COUNT(*) FROM ledger_journals")).scalar_one())
    step("done")
    return report
