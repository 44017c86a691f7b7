"""Hypothesis stateful test: random postings, duplicates, reversals, maturations and debits.

After every step: each journal sums to zero per currency, the ledger sums to zero per
currency, every running balance equals the sum of its entries (``verify``), no account that
may not go negative is negative, and what each creator is owed matches a model.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.orm import Session

from payments.errors import InsufficientBalance
from payments.ledger import service as ledger
from payments.ledger.service import (
    JournalKeyReused,
    JournalSpec,
    creator_account,
    credit,
    debit,
    platform_account,
)

DAY = 86_400
CREATORS = st.integers(min_value=1, max_value=3)
CURRENCIES = st.sampled_from(["usd", "jpy"])
AMOUNTS = st.integers(min_value=1, max_value=10_000)


def tip_spec(key: str, creator: int, cur: str, amount: int, at: int) -> JournalSpec:
    return JournalSpec(key, "tip", [debit(platform_account("stripe_balance", cur), amount),
                                    credit(creator_account(creator, "pending", cur), amount)],
                       ("tip", key), at)


def test_ledger_state_machine(db_session: Session) -> None:
    session = db_session

    class LedgerMachine(RuleBasedStateMachine):
        journals = Bundle("journals")

        def __init__(self) -> None:
            super().__init__()
            self.tx = session.begin_nested()
            self.now = 1_700_000_000
            self.posted: dict[str, tuple[int, str, int]] = {}  # key -> creator, cur, amount
            self.owed: dict[tuple[int, str], int] = defaultdict(int)
            self.n = 0

        def teardown(self) -> None:
            self.tx.rollback()

        @rule(target=journals, creator=CREATORS, cur=CURRENCIES, amount=AMOUNTS)
        def post_tip(self, creator: int, cur: str, amount: int) -> Any:
            self.n += 1
            key = f"tip_{self.n}"
            j = ledger.post_many(session, [tip_spec(key, creator, cur, amount, self.now)])[0]
            assert j.new
            self.posted[key] = (creator, cur, amount)
            self.owed[(creator, cur)] += amount
            return j.id

        @rule(data=st.data())
        def retry_a_posted_key(self, data: st.DataObject) -> None:
            if not self.posted:
                return
            key = data.draw(st.sampled_from(sorted(self.posted)))
            creator, cur, amount = self.posted[key]
            j = ledger.journal_by_key(session, key)
            assert j is not None
            # The same journal twice in a batch and once more: nothing new is written.
            spec = tip_spec(key, creator, cur, amount, j.effective_at)
            out = ledger.post_many(session, [spec, spec])
            assert [p.new for p in out] == [False, False] and {p.id for p in out} == {j.id}
            try:
                ledger.post(session, key, "tip", tip_spec(key, creator, cur, amount + 1,
                                                          self.now).legs, source=("tip", key))
                raise AssertionError("a reused key with other legs was accepted")
            except JournalKeyReused:
                pass

        @rule(journal=consumes(journals))
        def reverse(self, journal: int) -> None:
            original = ledger.get_journal(session, journal)
            try:
                with session.begin_nested():
                    rev = ledger.reverse(session, journal, effective_at=self.now)
            except InsufficientBalance:
                return
            assert rev.reverses_id == journal and rev.new
            again = ledger.reverse(session, journal)
            assert again.id == rev.id and not again.new
            for acc_id, amount in original.legs:
                info = ledger.account_by_id(session, acc_id)
                if info.owner_kind == "creator":
                    self.owed[(info.owner_id, info.currency)] += amount  # undo the credit

        @rule(days=st.integers(min_value=0, max_value=10))
        def mature(self, days: int) -> None:
            self.now += days * DAY

            def snapshot() -> dict[Any, Any]:
                out: dict[Any, Any] = {}
                for creator in range(1, 4):
                    for b in ledger.creator_balances(session, creator):
                        out[(creator, b["currency"])] = (b["pending"], b["available"])
                for key, (creator, cur, _a) in self.posted.items():
                    out[key] = ledger.pending_for_source(session, creator, cur, ("tip", key))
                return out

            before = snapshot()
            ledger.mature_due(session, default_hold_days=7, now=self.now)
            after = snapshot()
            for k, was in before.items():
                now_ = after[k]
                if isinstance(was, tuple):
                    # Maturation only moves pending to available, never below zero.
                    assert sum(was) == sum(now_)
                    assert now_[0] >= min(0, was[0]) and now_[0] <= was[0]
                else:
                    assert now_ >= min(0, was) and now_ <= was
            # Idempotent: a second run at the same time moves nothing.
            ledger.mature_due(session, default_hold_days=7, now=self.now)
            assert snapshot() == after

        @rule(creator=CREATORS, cur=CURRENCIES, amount=AMOUNTS, dispute=st.booleans())
        def debit_available(self, creator: int, cur: str, amount: int, dispute: bool) -> None:
            self.n += 1
            before = {b["currency"]: b for b in ledger.creator_balances(session, creator)}
            available = before.get(cur, {}).get("available", 0)
            target = (platform_account("refunds_and_disputes", cur) if dispute
                      else creator_account(creator, "in_transit", cur))
            try:
                with session.begin_nested():
                    ledger.debit_available(session, f"debit_{self.n}", "payout" if not dispute
                                           else "dispute", creator_account(creator, "available",
                                                                           cur),
                                           amount, target, allow_negative=dispute)
            except InsufficientBalance:
                assert available < amount and not dispute
                return
            assert dispute or available >= amount
            if dispute:
                self.owed[(creator, cur)] -= amount

        @rule()
        def checkpoint(self) -> None:
            ledger.checkpoint(session)

        @invariant()
        def books_balance(self) -> None:
            report = ledger.verify(session)
            assert report.ok, report
            assert all(t["total"] == 0 for t in ledger.trial_balance(session)["totals"])

        @invariant()
        def nothing_negative_that_may_not_be(self) -> None:
            rows = session.execute(text(
                "SELECT normal, balance FROM ledger_accounts WHERE running = true "
                "AND allow_negative = false")).all()
            for normal, balance in rows:
                assert (-balance if normal == "credit" else balance) >= 0

        @invariant()
        def creators_are_owed_what_the_model_says(self) -> None:
            for (creator, cur), owed in self.owed.items():
                lines = {b["currency"]: b for b in ledger.creator_balances(session, creator)}
                b = lines[cur]
                assert b["pending"] + b["available"] + b["reserved"] + b["in_transit"] == owed

    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(max_examples=60, stateful_step_count=30, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )
