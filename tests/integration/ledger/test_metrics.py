"""The ledger's postings counters (payments/ledger/metrics.py) while postings race the
checkpoint roll and scrapes: never a posting counted twice or missed, never a counter that
goes back, and the same numbers as counting the tables in full."""

from __future__ import annotations

import threading
from typing import Any

from payments.config import Config
from payments.db import session_scope
from payments.ledger import metrics
from payments.ledger import service as ledger
from payments.ledger.service import creator_account, credit, debit, platform_account
from tests.integration.ledger.test_concurrency import run_threads
from tests.integration.test_metrics import ledger_truth as truth


def counted() -> tuple[dict[str, int], dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    with session_scope() as s:
        c = metrics.posting_counts(s)
    return dict(c.journals), dict(c.entries), dict(c.debits)


def test_counts_stay_exact_while_postings_race_the_roll(committed_db: Config) -> None:
    stop = threading.Event()
    kinds = ("tip", "fee", "refund")

    def poster(i: int) -> int:
        n = 0
        while not stop.is_set() and n < 60:
            legs = [debit(platform_account("stripe_balance", "usd"), 7 + i),
                    credit(creator_account(200 + i, "pending", "usd"), 7 + i)]
            if n % 5 == 0:  # one journal in two currencies: still one journal
                legs += [debit(platform_account("stripe_balance", "jpy"), 100),
                         credit(creator_account(200 + i, "pending", "jpy"), 100)]
            with session_scope() as session:
                ledger.post(session, f"m:{i}:{n}", kinds[(i + n) % 3], legs)
            n += 1
        return n

    rolled: list[int] = []
    seen: list[Any] = []

    def roller() -> None:
        while not stop.is_set():
            with session_scope() as session:
                rolled.append(metrics.roll(session))

    def scraper() -> None:
        while not stop.is_set():
            seen.append(counted())

    background = [threading.Thread(target=roller), threading.Thread(target=scraper)]
    for t in background:
        t.start()
    posted = run_threads(6, poster)
    stop.set()
    for t in background:
        t.join(60)
    assert all(isinstance(r, int) for r in posted), posted
    assert sum(rolled) > 0 and len(seen) > 2

    # Every scrape is a moment of the ledger: no counter ever went back.
    for earlier, later in zip(seen, seen[1:], strict=False):
        for a, b in zip(earlier, later, strict=True):
            assert all(b.get(k, 0) >= v for k, v in a.items()), (a, b)
    assert counted() == truth()
    with session_scope() as session:
        metrics.roll(session)
    assert counted() == truth()
    journals, entries, _ = truth()
    assert sum(journals.values()) == sum(posted)
    assert entries[next(k for k in entries if k[1] == "jpy")] > 0
