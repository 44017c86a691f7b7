"""Pure checks (no database): leg helpers, journal shape, public ids, purposes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.ledger import service as ledger
from payments.ledger.service import (
    CREATOR_PURPOSES,
    PLATFORM_PURPOSES,
    InvalidPosting,
    JournalSpec,
    Leg,
    credit,
    debit,
    platform_account,
)

STRIPE = platform_account("stripe_balance", "usd")
REVENUE = platform_account("platform_revenue", "usd")


@given(st.integers(min_value=0, max_value=2**62))
def test_public_ids_round_trip(n: int) -> None:
    pid = ledger.public_id("le", n)
    assert pid.startswith("le_")
    assert ledger.parse_public_id("le", pid) == n
    assert ledger.parse_public_id("jr", pid) is None


@pytest.mark.parametrize("bad", ["", "le_", "le_!!", "x_1", "le_" + "z" * 13])
def test_bad_public_ids(bad: str) -> None:
    assert ledger.parse_public_id("le", bad) is None


@given(st.integers(min_value=1, max_value=10**15))
def test_debit_and_credit_mirror(amount: int) -> None:
    assert debit(STRIPE, amount).amount == amount
    assert credit(STRIPE, amount).amount == -amount


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        (JournalSpec("", "tip", [debit(STRIPE, 1), credit(REVENUE, 1)]), "invalid_key"),
        (JournalSpec("k", "Tip!", [debit(STRIPE, 1), credit(REVENUE, 1)]), "invalid_kind"),
        (JournalSpec("k", "tip", [debit(STRIPE, 1)]), "too_few_legs"),
        (JournalSpec("k", "tip", [Leg(STRIPE, 1.5), Leg(REVENUE, -1)]),  # type: ignore[arg-type]
         "invalid_amount"),
        (JournalSpec("k", "tip", [Leg(STRIPE, 10**18), Leg(REVENUE, -(10**18))]),
         "invalid_amount"),
        (JournalSpec("k", "tip", [debit(STRIPE, 1), credit(REVENUE, 1)],
                     source=("tip",)),  # type: ignore[arg-type]
         "invalid_source"),
        (JournalSpec("k", "tip", [debit(STRIPE, 1), credit(REVENUE, 1)],
                     effective_at=1.0),  # type: ignore[arg-type]
         "invalid_effective_at"),
    ],
)
def test_shape_checks(spec: JournalSpec, code: str) -> None:
    with pytest.raises(InvalidPosting) as err:
        ledger._check_shape(spec)
    assert err.value.code == code


def test_purposes_cover_the_architecture() -> None:
    assert {"pending", "available", "reserved", "in_transit", "paid_out"} <= set(CREATOR_PURPOSES)
    assert {"stripe_balance", "processor_fees", "platform_revenue", "deal_escrow",
            "refunds_and_disputes", "payouts_in_transit"} <= set(PLATFORM_PURPOSES)
    assert all(r.normal == "credit" for r in CREATOR_PURPOSES.values())


def test_earning_journals_balance_and_skip_zero_fees() -> None:
    specs = ledger.earning_journals(1, "usd", gross=1500, processor_fee=74, platform_fee=150,
                                    key="tip:1", kind="tip", source=("tip", "tip_1"),
                                    effective_at=5)
    assert [s.key for s in specs] == ["tip:1", "tip:1:processor_fee", "tip:1:platform_fee"]
    for s in specs:
        assert sum(leg.amount for leg in s.legs) == 0
    assert len(ledger.earning_journals(1, "usd", gross=1500, processor_fee=0, platform_fee=0,
                                       key="t", kind="tip", source=("tip", "t"),
                                       effective_at=5)) == 1
