"""Races with real commits: same key from many workers, posting and debiting one account."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text

from payments.config import Config
from payments.db import db, session_scope
from payments.errors import InsufficientBalance
from payments.ledger import service as ledger
from payments.ledger.models import Entry, Journal
from payments.ledger.service import creator_account, credit, debit, platform_account


def run_threads(n: int, target: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def wrapper(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_same_key_from_many_workers_makes_one_journal(committed_db: Config) -> None:
    legs = [debit(platform_account("stripe_balance", "usd"), 1500),
            credit(creator_account(1, "pending", "usd"), 1500)]

    def worker(_i: int) -> int:
        with session_scope() as session:
            return ledger.post(session, "evt_same", "tip", legs, source=("tip", "tip_same")).id

    n = 8 if db.dialect == "sqlite" else 16
    results = run_threads(n, worker)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Journal)) == 1
        assert session.scalar(select(func.count()).select_from(Entry)) == 2
        assert ledger.creator_balances(session, 1)[0]["pending"] == 1500
        assert ledger.verify(session).ok


@pytest.mark.postgres
def test_sixteen_threads_post_and_debit_one_account(committed_db: Config) -> None:
    creator = 7
    avail = creator_account(creator, "available", "usd")
    rounds, credit_amount, debit_amount = 15, 100, 170

    def worker(i: int) -> int:
        won = 0
        for r in range(rounds):
            with session_scope() as session:
                ledger.post(session, f"earn:{i}:{r}", "adjustment", [
                    debit(platform_account("stripe_balance", "usd"), credit_amount),
                    credit(avail, credit_amount)])
            try:
                with session_scope() as session:
                    ledger.debit_available(session, f"po:{i}:{r}", "payout", avail,
                                           debit_amount,
                                           creator_account(creator, "in_transit", "usd"))
                won += 1
            except InsufficientBalance:
                pass
        return won

    results = run_threads(16, worker)
    assert all(isinstance(r, int) for r in results), results
    wins = sum(results)
    assert wins > 0
    with session_scope() as session:
        [bal] = ledger.creator_balances(session, creator)
        assert bal["available"] == 16 * rounds * credit_amount - wins * debit_amount
        assert bal["in_transit"] == wins * debit_amount
        assert bal["available"] >= 0
        # No debit ever overdrew: every balance_after on available stayed >= 0.
        acc = ledger.account_for(session, "creator", creator, "available", "usd")
        lowest = session.scalar(select(func.max(Entry.balance_after))
                                .where(Entry.account_id == acc.id))
        assert lowest is not None and lowest <= 0  # credit-normal: owed is negative inside
        assert session.scalar(select(func.count()).select_from(Entry)
                              .where(Entry.account_id == acc.id,
                                     Entry.balance_after > 0)) == 0
        assert ledger.checkpoint(session) >= 1
        assert ledger.verify(session).ok


@pytest.mark.postgres
def test_checkpoint_while_posting_loses_nothing(committed_db: Config) -> None:
    stop = threading.Event()

    def poster(i: int) -> int:
        n = 0
        while not stop.is_set() and n < 150:
            with session_scope() as session:
                ledger.post(session, f"cp:{i}:{n}", "tip", [
                    debit(platform_account("stripe_balance", "usd"), 3),
                    credit(creator_account(100 + i, "pending", "usd"), 3)])
            n += 1
        return n

    def checkpointer(_i: int) -> int:
        rolled = 0
        while not stop.is_set():
            with session_scope() as session:
                rolled += ledger.checkpoint(session)
        return rolled

    box: list[Any] = []
    cp = threading.Thread(target=lambda: box.append(checkpointer(0)))
    cp.start()
    posted = run_threads(8, poster)
    stop.set()
    cp.join(60)
    assert all(isinstance(r, int) for r in posted), posted
    with session_scope() as session:
        ledger.checkpoint(session)
        stripe = ledger.account_balance(session, platform_account("stripe_balance", "usd"))
        assert stripe == 3 * sum(posted)
        row = session.execute(text(
            "SELECT balance FROM ledger_accounts WHERE owner_kind = 'platform'")).scalar_one()
        assert row == stripe
        assert ledger.verify(session).ok
