from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.errors import InvalidRequest
from payments.money import (
    CURRENCIES,
    MIN_CHARGE,
    Money,
    allocate,
    apply_rate,
    currency,
    split_fee,
)

amounts = st.integers(min_value=-(10**15), max_value=10**15)
ratios = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12).filter(
    lambda rs: sum(rs) > 0
)


@given(amounts, ratios)
def test_allocate_parts_always_sum_to_the_whole(amount: int, rs: list[int]) -> None:
    parts = allocate(amount, rs)
    assert sum(parts) == amount
    assert len(parts) == len(rs)
    assert all(type(p) is int for p in parts)


@given(amounts, ratios)
def test_allocate_each_part_within_one_unit_of_its_exact_share(amount: int, rs: list[int]) -> None:
    total = sum(rs)
    for part, r in zip(allocate(amount, rs), rs, strict=True):
        assert abs(Fraction(part) - Fraction(amount * r, total)) < 1


@given(st.integers(min_value=0, max_value=10**12), st.decimals(min_value=0, max_value="0.99", places=4))
def test_split_fee_sums_and_is_close_to_the_rate(amount: int, rate: Decimal) -> None:
    fee, rest = split_fee(amount, rate)
    assert fee + rest == amount
    assert abs(Fraction(fee) - amount * Fraction(rate)) < 1


def test_allocate_known_values() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(5, [3, 7]) == [2, 3] or allocate(5, [3, 7]) == [1, 4]
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate(1000, [Decimal("0.1"), Decimal("0.9")]) == [100, 900]


def test_allocate_refuses_floats_and_bad_ratios() -> None:
    with pytest.raises(TypeError):
        allocate(10.0, [1, 1])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        allocate(10, [])
    with pytest.raises(ValueError):
        allocate(10, [0, 0])
    with pytest.raises(ValueError):
        allocate(10, [-1, 2])


def test_money_refuses_floats_bools_and_mixed_currencies() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "usd")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "usd")
    with pytest.raises(ValueError):
        Money(1, "xxx")
    with pytest.raises(ValueError):
        Money(1, "usd") + Money(1, "jpy")
    assert Money(150, "usd") + Money(50, "usd") == Money(200, "usd")
    assert Money(150, "usd").format() == "1.50 USD"
    assert Money(500, "jpy").format() == "500 JPY"


def test_currency_table_has_zero_decimal_currencies() -> None:
    assert CURRENCIES["jpy"].exponent == 0
    assert CURRENCIES["krw"].exponent == 0
    assert CURRENCIES["usd"].exponent == 2
    assert currency("USD").code == "usd"
    for three_decimal in ("bhd", "kwd", "jod"):
        with pytest.raises(InvalidRequest) as err:
            currency(three_decimal)
        assert err.value.code == "unsupported_currency"


def test_minimum_charges_are_stripes_in_our_minor_units() -> None:
    # A few rows of Stripe's table (https://docs.stripe.com/currencies), as minor units.
    assert {c: MIN_CHARGE[c] for c in ("usd", "gbp", "hkd", "huf", "jpy", "mxn", "thb")} == {
        "usd": 50, "gbp": 30, "hkd": 400, "huf": 17500, "jpy": 50, "mxn": 1000, "thb": 1000}
    # Not in Stripe's table: about USD 0.50, rounded up (idr is two-decimal here).
    assert CURRENCIES["idr"].min_charge == 1_000_000  # IDR 10,000
    assert CURRENCIES["krw"].min_charge == 1_000
    assert all(c.min_charge == MIN_CHARGE[c.code] for c in CURRENCIES.values())


def test_apply_rate_uses_explicit_rounding() -> None:
    assert apply_rate(1005, Decimal("0.029")) == 29  # 29.145 -> 29
    assert apply_rate(1500, Decimal("0.029")) == 44  # 43.5 -> 44 (half up)
    with pytest.raises(TypeError):
        apply_rate(1.0, Decimal("0.1"))  # type: ignore[arg-type]
