"""post() and post_many(): balanced, idempotent, refusing bad journals with nothing written."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payments.errors import Conflict, InsufficientBalance
from payments.ledger import service as ledger
from payments.ledger.models import Entry, Journal, LedgerAccount
from payments.ledger.service import (
    InvalidPosting,
    JournalKeyReused,
    JournalSpec,
    Leg,
    creator_account,
    credit,
    debit,
    platform_account,
)


def report_ok(session: Session) -> bool:
    return ledger.verify(session).ok


def counts(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(Journal)) or 0,
        session.scalar(select(func.count()).select_from(Entry)) or 0,
    )


def tip_legs(creator: int, amount: int, cur: str = "usd") -> list[Leg]:
    return [
        debit(platform_account("stripe_balance", cur), amount),
        credit(creator_account(creator, "pending", cur), amount),
    ]


@pytest.mark.parametrize(("cur", "gross", "fee"), [("usd", 1500, 74), ("jpy", 500, 18)])
def test_tip_with_fees_to_the_cent(db_session: Session, creator_id: int, cur: str, gross: int,
                                   fee: int) -> None:
    from payments.money import split_fee

    ledger.post(db_session, f"tip:1:{cur}", "tip", tip_legs(creator_id, gross, cur),
                source=("tip", "tip_1"), effective_at=1_000)
    platform_fee, _ = split_fee(gross, Decimal("0.10"))
    ledger.post_many(db_session, ledger.earning_journals(
        creator_id, cur, gross=gross, processor_fee=fee, platform_fee=platform_fee,
        key=f"tip:1:{cur}", kind="tip", source=("tip", "tip_1"), effective_at=1_000))
    [bal] = ledger.creator_balances(db_session, creator_id)
    assert bal == {"currency": cur, "pending": gross - fee - platform_fee, "available": 0,
                   "reserved": 0, "in_transit": 0, "paid_out": 0}
    stripe = ledger.account_balance(db_session, platform_account("stripe_balance", cur))
    assert stripe == gross - fee
    assert ledger.account_balance(db_session, platform_account("platform_revenue", cur)) == (
        -platform_fee)
    assert report_ok(db_session)
    tb = ledger.trial_balance(db_session)
    assert tb["totals"] == [{"currency": cur, "total": 0}]
    report = ledger.verify(db_session)
    assert report.ok, report
    assert report.journals == 3 and report.entries == 6


def test_same_key_same_legs_returns_the_first_and_writes_nothing(
    db_session: Session, creator_id: int
) -> None:
    first = ledger.post(db_session, "k1", "tip", tip_legs(creator_id, 100),
                        source=("tip", "tip_x"))
    before = counts(db_session)
    again = ledger.post(db_session, "k1", "tip", tip_legs(creator_id, 100),
                        source=("tip", "tip_x"))
    assert first.new and not again.new
    assert again.id == first.id
    assert counts(db_session) == before
    assert ledger.creator_balances(db_session, creator_id)[0]["pending"] == 100


@pytest.mark.parametrize("change", ["amount", "kind", "source", "account"])
def test_same_key_different_journal_raises(db_session: Session, creator_id: int,
                                           change: str) -> None:
    ledger.post(db_session, "k2", "tip", tip_legs(creator_id, 100), source=("tip", "t"))
    before = counts(db_session)
    legs = tip_legs(creator_id, 101 if change == "amount" else 100)
    if change == "account":
        legs = [debit(platform_account("stripe_balance", "usd"), 100),
                credit(creator_account(creator_id, "available", "usd"), 100)]
    with pytest.raises(JournalKeyReused) as err:
        ledger.post(db_session, "k2", "refund" if change == "kind" else "tip", legs,
                    source=("tip", "other") if change == "source" else ("tip", "t"))
    assert err.value.code == "journal_key_reused"
    assert counts(db_session) == before


@pytest.mark.parametrize(
    ("legs", "code"),
    [
        ([], "too_few_legs"),
        ([Leg(platform_account("stripe_balance", "usd"), 5)], "too_few_legs"),
        ([debit(platform_account("stripe_balance", "usd"), 5),
          credit(platform_account("platform_revenue", "usd"), 4)], "unbalanced_journal"),
        ([Leg(platform_account("stripe_balance", "usd"), 5.0),  # type: ignore[arg-type]
          Leg(platform_account("platform_revenue", "usd"), -5)], "invalid_amount"),
        ([Leg(platform_account("stripe_balance", "usd"), Decimal(5)),  # type: ignore[arg-type]
          Leg(platform_account("platform_revenue", "usd"), -5)], "invalid_amount"),
        ([Leg(platform_account("stripe_balance", "usd"), True),  # type: ignore[arg-type]
          Leg(platform_account("platform_revenue", "usd"), -1)], "invalid_amount"),
        ([Leg(platform_account("stripe_balance", "usd"), 0),
          Leg(platform_account("platform_revenue", "usd"), 0)], "invalid_amount"),
        # Balanced in total but not per currency.
        ([debit(platform_account("stripe_balance", "usd"), 5),
          credit(platform_account("platform_revenue", "eur"), 5)], "unbalanced_journal"),
        ([Leg(platform_account("stripe_balance", "usd"), 5, currency="eur"),
          Leg(platform_account("platform_revenue", "usd"), -5)], "currency_mismatch"),
        ([debit(platform_account("stripe_balance", "usd"), 5),
          credit(platform_account("nonsense", "usd"), 5)], "unknown_purpose"),
        ([debit(platform_account("stripe_balance", "usd"), 5),
          credit(platform_account("platform_revenue", "xxx"), 5)], "unknown_currency"),
        ([debit(platform_account("stripe_balance", "usd"), 5),
          credit(platform_account("stripe_balance", "usd"), 5)], "duplicate_account"),
    ],
)
def test_bad_journals_are_refused_with_nothing_written(db_session: Session, legs: list[Leg],
                                                       code: str) -> None:
    before = counts(db_session)
    with pytest.raises(InvalidPosting) as err:
        ledger.post(db_session, "bad", "tip", legs)
    assert err.value.code == code
    assert counts(db_session) == before


def test_debit_and_credit_helpers_refuse_non_positive_or_non_int() -> None:
    for bad in (0, -1, 1.0, True, "1"):
        with pytest.raises(InvalidPosting):
            debit(platform_account("stripe_balance", "usd"), bad)  # type: ignore[arg-type]


def test_running_balance_and_balance_after(db_session: Session, creator_id: int) -> None:
    for i, amount in enumerate([100, 250, 50]):
        ledger.post(db_session, f"t{i}", "tip", tip_legs(creator_id, amount))
    lines, more = ledger.creator_ledger(db_session, creator_id)
    assert not more
    assert [(x["amount"], x["balance_after"]) for x in lines] == [(50, 400), (250, 350),
                                                                 (100, 100)]
    acc = db_session.scalar(select(LedgerAccount).where(
        LedgerAccount.owner_id == creator_id, LedgerAccount.purpose == "pending"))
    assert acc is not None and acc.balance == -400
    last = db_session.scalar(select(func.max(Entry.id)).where(Entry.account_id == acc.id))
    assert acc.last_entry_id == last


def test_post_many_writes_many_with_the_same_guarantees(
    db_session: Session, new_creator: Any
) -> None:
    creators = [new_creator() for _ in range(5)]
    ledger.post(db_session, "pre", "tip", tip_legs(creators[0], 7))
    specs = [JournalSpec(f"b{i}", "tip", tip_legs(creators[i % 5], 10 + i)) for i in range(20)]
    specs.append(JournalSpec("pre", "tip", tip_legs(creators[0], 7)))  # already posted
    specs.append(JournalSpec("b3", "tip", tip_legs(creators[3], 13)))  # dup inside the batch
    out = ledger.post_many(db_session, specs)
    assert [p.key for p in out] == [s.key for s in specs]
    assert sum(p.new for p in out) == 20
    assert out[-1].id == out[3].id
    assert not out[-2].new
    lines, _ = ledger.creator_ledger(db_session, creators[0], limit=100)
    # balance_after runs in entry order across the batch: 7, then +10, +15, +20, +25.
    assert [x["balance_after"] for x in reversed(lines)] == [7, 17, 32, 52, 77]
    assert ledger.verify(db_session).ok
    with pytest.raises(JournalKeyReused):
        ledger.post_many(db_session, [JournalSpec("z", "tip", tip_legs(creators[0], 1)),
                                      JournalSpec("z", "tip", tip_legs(creators[0], 2))])


def test_post_many_with_many_creator_accounts(db_session: Session, new_creator: Any) -> None:
    creators = [new_creator() for _ in range(6)]
    specs = [JournalSpec(f"m{i}", "maturation_test", [
        debit(creator_account(c, "pending", "usd"), 5),
        credit(creator_account(c, "available", "usd"), 5)]) for i, c in enumerate(creators)]
    ledger.post_many(db_session, [JournalSpec(f"t{c}", "tip", tip_legs(c, 5)) for c in creators]
                     + specs)
    for c in creators:
        [bal] = ledger.creator_balances(db_session, c)
        assert (bal["pending"], bal["available"]) == (0, 5)
    assert ledger.verify(db_session).ok


def test_reversal_mirrors_and_links_once(db_session: Session, creator_id: int) -> None:
    j = ledger.post(db_session, "r1", "tip", tip_legs(creator_id, 300), source=("tip", "t1"))
    rev = ledger.reverse(db_session, j.id)
    assert rev.reverses_id == j.id and rev.kind == "reversal"
    assert sorted(rev.legs) == sorted((a, -m) for a, m in j.legs)
    assert (rev.source_type, rev.source_id) == ("tip", "t1")
    again = ledger.reverse(db_session, j.id)
    assert again.id == rev.id
    assert ledger.creator_balances(db_session, creator_id)[0]["pending"] == 0
    assert ledger.verify(db_session).ok


def test_a_second_reversal_under_another_key_is_refused(db_session: Session,
                                                       creator_id: int) -> None:
    """The database holds one reversal per journal (a partial unique index)."""
    j = ledger.post(db_session, "r2", "tip", tip_legs(creator_id, 300))
    rev = ledger.reverse(db_session, j.id)
    mirror = [ledger.Leg(ledger.account_by_id(db_session, a), -m) for a, m in j.legs]
    with pytest.raises(Conflict) as err, db_session.begin_nested():
        ledger.post(db_session, "r2-again", "reversal", mirror, reverses_id=j.id)
    assert err.value.code == "journal_already_reversed"
    # Journals that reverse nothing are unconstrained by it.
    for n in range(3):
        assert ledger.post(db_session, f"free{n}", "tip", tip_legs(creator_id, 1)).reverses_id is None
    assert ledger.get_journal(db_session, rev.id).reverses_id == j.id
    assert ledger.verify(db_session).ok


def test_non_negative_accounts_are_refused_by_the_database(db_session: Session,
                                                           creator_id: int) -> None:
    with pytest.raises(InsufficientBalance):
        ledger.post(db_session, "neg", "adjustment", [
            debit(creator_account(creator_id, "reserved", "usd"), 10),
            credit(creator_account(creator_id, "available", "usd"), 10)])


def test_account_for_is_idempotent(db_session: Session, creator_id: int) -> None:
    a = ledger.account_for(db_session, "creator", creator_id, "pending", "USD")
    db_session.info.clear()
    b = ledger.account_for(db_session, "creator", creator_id, "pending", "usd")
    assert a == b and a.running and a.normal == "credit"
    p = ledger.account_for(db_session, "platform", None, "stripe_balance", "usd")
    assert not p.running and p.owner_id == 0


def test_a_journal_is_never_booked_before_its_effective_time(db_session: Session,
                                                             creator_id: int) -> None:
    """Our clock may trail Stripe's (the sandbox's, through a one-second cache, just after
    an advance): a journal effective later than our now is booked at its effective time; one
    effective earlier is booked now. Single posts and batches alike."""
    from payments.clock import freeze

    now = 1_800_000_000
    ahead, behind = now + 31 * 86400, now - 3600
    with freeze(now):
        ledger.post(db_session, "clamp:one:ahead", "tip", tip_legs(creator_id, 100),
                    effective_at=ahead)
        ledger.post(db_session, "clamp:one:behind", "tip", tip_legs(creator_id, 100),
                    effective_at=behind)
        ledger.post_many(db_session, [
            JournalSpec(f"clamp:many:{i}", "tip", tip_legs(creator_id, 100), effective_at=at)
            for i, at in enumerate((ahead, behind))])
    booked = dict(db_session.execute(select(Journal.key, Journal.created).where(
        Journal.key.like("clamp:%"))).all())
    assert booked == {"clamp:one:ahead": ahead, "clamp:one:behind": now,
                      "clamp:many:0": ahead, "clamp:many:1": now}
    assert report_ok(db_session)
