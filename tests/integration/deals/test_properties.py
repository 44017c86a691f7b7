"""Random sequences of deal actions keep the escrow right.

The service is driven directly on a real database, with Stripe's answers and events built
here (the funding charge and its balance transaction, refunds, a chargeback): after every
step escrow = funded - released - refunded, never negative, equal to the ledger's
``deal_escrow`` balance for the deal, and the books verify at the end.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from payments import clock
from payments.accounts.models import Brand, Creator
from payments.deals import service
from payments.deals.models import Deal, DealRefund
from payments.errors import PaymentsError
from payments.ledger import service as ledger

DAY = 86_400


def _tok() -> str:
    return secrets.token_hex(8)


def test_random_deal_actions_keep_escrow_equal_to_the_ledger(db_session: Any) -> None:
    session = db_session
    seen: Counter[str] = Counter()
    brand = Brand(name="Prop brand", email="p@example.com", country="US")
    creator = Creator(handle="prop_" + _tok()[:8], display_name="P", email="c@example.com",
                      kind="influencer", country="US", default_currency="usd")
    session.add_all([brand, creator])
    session.flush()
    b = service.Actor("brand", brand.id, brand.public_id)
    c = service.Actor("creator", creator.id, creator.public_id)
    admin = service.Actor("admin", None, "admin")

    class DealMachine(RuleBasedStateMachine):
        deal: Deal
        now: int
        answers: list[tuple[DealRefund, dict[str, Any]]]

        @contextmanager
        def step(self) -> Iterator[None]:
            """One action in its own savepoint; a refused one leaves nothing behind."""
            with clock.freeze(self.now):
                try:
                    with session.begin_nested():
                        yield
                except PaymentsError as exc:
                    seen[f"refused {exc.code}"] += 1
            session.expire_all()
            now = session.get(Deal, self.deal.id)
            seen[now.status if now is not None else "?"] += 1
            if now is not None and now.stripe_dispute_id:
                seen["chargeback"] += 1

        @initialize(amounts=st.lists(st.integers(50, 200_000), min_size=1, max_size=4),
                    currency=st.sampled_from(["usd", "jpy"]),
                    bearer=st.sampled_from(["platform", "creator"]),
                    rate=st.sampled_from([Decimal("0.10"), Decimal("0.125"), Decimal("0")]),
                    paid=st.sampled_from([True, True, False]))
        def propose(self, amounts: list[int], currency: str, bearer: str,
                    rate: Decimal, paid: bool) -> None:
            self.now = 1_800_000_000
            self.answers = []
            with clock.freeze(self.now):
                self.deal = service.create_deal(session, {
                    "creator": creator.public_id, "title": "T", "brief": "B",
                    "currency": currency, "review_days": 2,
                    "milestones": [{"title": f"m{i}", "platform": "x", "deliverable": "d",
                                    "amount": a, "due_date": date(2027, 1, 1)}
                                   for i, a in enumerate(amounts)]},
                    brand_id=brand.id, fee_bearer=bearer, fee_rate=rate)
                service.accept(session, self.deal, c)
            if paid:
                self.fund(fee=min(amounts) // 3)

        def _ms(self, i: int) -> Any:
            mss = service.milestones_of(session, self.deal)
            return mss[i % len(mss)]

        @rule(fee=st.integers(0, 3_000))
        def fund(self, fee: int) -> None:
            with self.step():
                deal = service.start_funding(session, self.deal, b)
                tok = _tok()
                ledger.post_many(session, service.funding_succeeded(
                    session, deal, {"id": "ch_" + tok, "payment_intent": "pi_" + tok,
                                    "captured": True},
                    {"id": "txn_" + tok, "amount": deal.amount, "fee": min(fee, deal.amount),
                     "currency": deal.currency, "created": self.now}))

        @rule(i=st.integers(0, 3))
        def submit(self, i: int) -> None:
            with self.step():
                service.submit(session, self.deal, self._ms(i), c, "https://x.com/p", None)

        @rule(i=st.integers(0, 3))
        def request_changes(self, i: int) -> None:
            with self.step():
                service.request_changes(session, self.deal, self._ms(i), b, "again")

        @rule(i=st.integers(0, 3))
        def approve(self, i: int) -> None:
            with self.step():
                service.approve(session, self.deal, self._ms(i), b)

        @rule(i=st.integers(0, 3))
        def submit_then_approve(self, i: int) -> None:
            with self.step():
                service.submit(session, self.deal, self._ms(i), c, "https://x.com/p", None)
            with self.step():
                service.approve(session, self.deal, self._ms(i), b)

        @rule(days=st.integers(0, 3))
        def time_passes_and_beat_runs(self, days: int) -> None:
            self.now += days * DAY
            with self.step():
                for ms_id in service.due_milestones(session, self.now):
                    service.auto_approve(session, ms_id, self.now)

        def _settle(self, refund: DealRefund | None) -> None:
            if refund is not None:
                answer = {"id": "re_" + _tok(), "amount": refund.amount, "status": "succeeded",
                          "created": self.now}
                service.refund_settled(session, refund, answer)
                self.answers.append((refund, answer))

        @rule(by_brand=st.booleans(), roll=st.integers(0, 7))
        def cancel(self, by_brand: bool, roll: int) -> None:
            if roll:
                return  # rarely: a cancel ends the run's interesting part
            with self.step():
                plan = service.cancel(session, self.deal, b if by_brand else c, None)
                if plan.cancel_intent:
                    service.intent_canceled(session, plan.deal, b, None,
                                            {"id": plan.deal.payment_intent_id,
                                             "status": "canceled"})
                self._settle(plan.refund)

        @rule(by_brand=st.booleans(), roll=st.integers(0, 3))
        def dispute(self, by_brand: bool, roll: int) -> None:
            if roll:
                return
            with self.step():
                service.open_dispute(session, self.deal, b if by_brand else c, "why")

        @rule(roll=st.integers(0, 5))
        def chargeback(self, roll: int) -> None:
            if roll:
                return
            with self.step():
                deal = service.lock_deal(session, self.deal)
                if not deal.escrow_funded:
                    return
                service.chargeback(session, deal, {
                    "id": deal.stripe_dispute_id or "dp_" + _tok(), "amount": deal.amount,
                    "status": "needs_response", "reason": "fraudulent",
                    "balance_transactions": [{"id": "txn_" + _tok(),
                                              "net": -deal.amount - 1_500,
                                              "currency": deal.currency,
                                              "created": self.now}]})

        @rule(percent=st.integers(0, 100), off_by=st.sampled_from([0, 0, 0, 1]))
        def resolve(self, percent: int, off_by: int) -> None:
            with self.step():
                deal = service.lock_deal(session, self.deal)
                left = service.remaining(deal)
                to_creator = left * percent // 100
                _, refund = service.resolve(session, deal, admin, to_creator,
                                            left - to_creator + off_by)
                self._settle(refund)

        @rule()
        def a_refund_event_comes_again(self) -> None:
            if self.answers:
                refund, answer = self.answers[-1]
                with self.step():
                    service.refund_settled(session, refund, answer)

        @invariant()
        def escrow_equals_the_ledger(self) -> None:
            deal = session.get(Deal, self.deal.id)
            assert deal is not None
            e = service.escrow(deal)
            assert e["remaining"] == e["funded"] - e["released"] - e["refunded"]
            assert e["remaining"] >= 0 and e["released"] >= 0 and e["refunded"] >= 0
            assert service.ledger_escrow(session, deal) == e["remaining"]
            assert e["frozen"] == (e["remaining"] if deal.status == "disputed" else 0)
            if deal.status in ("completed", "resolved") and not deal.stripe_dispute_id:
                assert e["remaining"] == 0 or any(
                    r.status == "pending" for r in session.query(DealRefund)
                    .filter(DealRefund.deal_id == deal.id))
            released = sum(m.amount for m in service.milestones_of(session, deal)
                           if m.status == "released")
            assert e["released"] == released + (deal.resolution_creator_amount or 0)
            owed = ledger.pending_for_source(session, deal.creator_id, deal.currency,
                                             service.source(deal))
            assert owed >= 0

        def teardown(self) -> None:
            report = ledger.verify(session)
            assert report.ok, report

    run_state_machine_as_test(DealMachine, settings=settings(
        max_examples=150, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    # The runs reached every corner that moves escrow.
    print(dict(seen))
    for status in ("funded", "completed", "canceled", "disputed", "resolved", "chargeback",
                   "refused invalid_transition"):
        assert seen[status], (status, dict(seen))
