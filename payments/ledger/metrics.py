"""The ledger's postings as Prometheus counters, read from the ledger itself.

Counting ``ledger_journals`` or ``ledger_entries`` at every scrape would read the whole
table (millions of rows). Instead the counts are kept like the platform accounts' balances
(docs/ledger.md): a checkpoint in ``ledger_cursors`` (``metrics:h`` = the entry id it
covers, ``metrics:jh`` the journal of that entry, ``metrics:j:<kind>`` journals,
``metrics:e:<kind>:<currency>`` entries, ``metrics:d:<kind>:<currency>`` debits in minor
units), rolled forward to the safe horizon by the beat task ``ledger.roll_metrics`` (every
minute), plus the entries newer than the checkpoint, read at scrape time by primary-key
range scans (EXPLAIN on PostgreSQL: index scans on both tables, never the whole table).
The posting path is not touched: no counter row is locked by a posting. Counts are exact:
the horizon is a point where every entry at or below it is committed and a journal's
entries are all on one side of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.orm import Session

from payments.ledger.jobs import _safe_horizon, _set_cursor, _single_flight

METRICS_LOCK = 0x1ED6E7_0004  # next to jobs.CHECKPOINT_LOCK: one roller at a time
PREFIX = "metrics:"
HORIZON = PREFIX + "h"
# The journal of the entry at the horizon: every journal with entries after the horizon was
# made after that moment, so its id is larger. Bounding both tables keeps the scrape's join
# to index range scans (without it PostgreSQL hashes the whole journals table).
JOURNAL_HORIZON = PREFIX + "jh"

# Entries in (after, upto], per journal kind and currency; a journal in two currencies is
# one journal, so journals are counted per kind on their own.
_TAIL = text(
    "SELECT j.kind, e.currency, COUNT(*), "
    "COALESCE(SUM(CASE WHEN e.amount > 0 THEN e.amount ELSE 0 END), 0) "
    "FROM ledger_entries e JOIN ledger_journals j ON j.id = e.journal_id "
    "WHERE e.id > :after AND e.id <= :upto AND j.id > :jafter GROUP BY j.kind, e.currency")
_STORED = text("SELECT name, value FROM ledger_cursors WHERE name LIKE 'metrics:%'")
_MAX_ID = 2**63 - 1


class Counts:
    """Journals by kind; entries and debits (minor units) by kind and currency."""

    def __init__(self) -> None:
        self.journals: dict[str, int] = defaultdict(int)
        self.entries: dict[tuple[str, str], int] = defaultdict(int)
        self.debits: dict[tuple[str, str], int] = defaultdict(int)


_TAIL_JOURNALS = text(
    "SELECT j.kind, COUNT(DISTINCT e.journal_id) "
    "FROM ledger_entries e JOIN ledger_journals j ON j.id = e.journal_id "
    "WHERE e.id > :after AND e.id <= :upto AND j.id > :jafter GROUP BY j.kind")


def _range(session: Session, after: int, jafter: int, upto: int, counts: Counts) -> None:
    conn = session.connection()
    params = {"after": after, "jafter": jafter, "upto": upto}
    for kind, currency, entries, debits in conn.execute(_TAIL, params):
        counts.entries[(kind, currency)] += int(entries)
        counts.debits[(kind, currency)] += int(debits)
    for kind, journals in conn.execute(_TAIL_JOURNALS, params):
        counts.journals[kind] += int(journals)


def _stored(session: Session) -> tuple[int, int, Counts]:
    counts = Counts()
    horizon = jhorizon = 0
    for name, value in session.connection().execute(_STORED):
        part = name[len(PREFIX):].split(":")
        if part[0] == "h":
            horizon = int(value)
        elif part[0] == "jh":
            jhorizon = int(value)
        elif part[0] == "j" and len(part) == 2:
            counts.journals[part[1]] += int(value)
        elif part[0] in ("e", "d") and len(part) == 3:
            table = counts.entries if part[0] == "e" else counts.debits
            table[(part[1], part[2])] += int(value)
    return horizon, jhorizon, counts


def posting_counts(session: Session) -> Counts:
    """Every posting so far: the checkpoint plus the entries after it.

    The checkpoint's counts and its horizon are read in one statement; the entries after
    it are read in a later snapshot, which holds everything the checkpoint's did and more,
    so nothing is counted twice or missed whenever a roll commits.
    """
    horizon, jhorizon, counts = _stored(session)
    _range(session, horizon, jhorizon, _MAX_ID, counts)
    return counts


def roll(session: Session) -> int:
    """Move the checkpoint to the safe horizon; answer how many entries it took in."""
    if not _single_flight(session, METRICS_LOCK):
        return 0
    horizon = _safe_horizon(session)
    if horizon is None:
        return 0
    stored, jstored, counts = _stored(session)
    if horizon <= stored:
        return 0
    fresh = Counts()
    _range(session, stored, jstored, horizon, fresh)
    for kind, n in fresh.journals.items():
        _set_cursor(session, f"{PREFIX}j:{kind}", counts.journals[kind] + n)
    for (kind, currency), n in fresh.entries.items():
        _set_cursor(session, f"{PREFIX}e:{kind}:{currency}", counts.entries[(kind, currency)] + n)
    for (kind, currency), n in fresh.debits.items():
        _set_cursor(session, f"{PREFIX}d:{kind}:{currency}", counts.debits[(kind, currency)] + n)
    journal = session.connection().execute(
        text("SELECT journal_id FROM ledger_entries WHERE id = :h"), {"h": horizon}).scalar()
    _set_cursor(session, JOURNAL_HORIZON, int(journal or 0))
    _set_cursor(session, HORIZON, horizon)
    return sum(fresh.entries.values())


def collect(session: Session) -> Iterator[Metric]:
    counts = posting_counts(session)
    journals = CounterMetricFamily(
        "creatorpay_ledger_journals", "Ledger journals posted, by kind.", labels=["kind"])
    for kind, n in sorted(counts.journals.items()):
        journals.add_metric([kind], n)
    entries = CounterMetricFamily(
        "creatorpay_ledger_entries", "Ledger entries posted, by journal kind and currency.",
        labels=["kind", "currency"])
    for (kind, currency), n in sorted(counts.entries.items()):
        entries.add_metric([kind, currency], n)
    debits = CounterMetricFamily(
        "creatorpay_ledger_debits_minor_units",
        "Sum of the debit entries posted (money moved), in the currency's minor units.",
        labels=["kind", "currency"])
    for (kind, currency), n in sorted(counts.debits.items()):
        debits.add_metric([kind, currency], n)
    yield journals
    yield entries
    yield debits
