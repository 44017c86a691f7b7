"""Money: integer minor units plus a lowercase ISO 4217 code. Never a float.

``Decimal`` appears only for rates, always with an explicit rounding mode. Splits go through
``allocate()``, whose parts always add up to the whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import lru_cache

from payments.errors import InvalidRequest


@dataclass(frozen=True)
class Currency:
    code: str
    exponent: int
    # Stripe's smallest charge in this currency, in minor units.
    min_charge: int


# Currencies we settle. Stripe's three-decimal currencies (bhd, jod, kwd, omr, tnd) and its
# payout oddities (isk, huf, twd must be multiples of 100 minor units on payouts) are left out
# on purpose: they are refused as unsupported rather than mishandled.
CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        Currency("usd", 2, 50),
        Currency("eur", 2, 50),
        Currency("gbp", 2, 30),
        Currency("aud", 2, 50),
        Currency("cad", 2, 50),
        Currency("chf", 2, 50),
        Currency("nzd", 2, 50),
        Currency("sgd", 2, 50),
        Currency("hkd", 2, 400),
        Currency("dkk", 2, 250),
        Currency("nok", 2, 300),
        Currency("sek", 2, 300),
        Currency("pln", 2, 200),
        Currency("brl", 2, 50),
        Currency("mxn", 2, 1000),
        Currency("inr", 2, 50),
        Currency("idr", 2, 1_000_000),
        Currency("myr", 2, 200),
        Currency("php", 2, 2000),
        Currency("thb", 2, 1000),
        Currency("aed", 2, 200),
        Currency("jpy", 0, 50),
        Currency("krw", 0, 500),
        Currency("vnd", 0, 10_000),
        Currency("clp", 0, 500),
    )
}

ZERO_DECIMAL = frozenset(c.code for c in CURRENCIES.values() if c.exponent == 0)


def currency(code: str, param: str = "currency") -> Currency:
    """Look a currency up case-insensitively; unknown codes are a 400 for the client."""
    found = CURRENCIES.get(code.lower()) if isinstance(code, str) else None
    if found is None:
        raise InvalidRequest(
            f"Unsupported currency {code!r}.", code="unsupported_currency", param=param
        )
    return found


@dataclass(frozen=True, order=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:  # bool is an int subclass; refuse it too
            raise TypeError(f"Money amount must be int minor units, got {type(self.amount)!r}")
        if self.currency not in CURRENCIES:
            raise ValueError(f"unsupported currency {self.currency!r}")

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def allocate(self, ratios: Sequence[int | Decimal | Fraction]) -> list[Money]:
        return [Money(p, self.currency) for p in allocate(self.amount, ratios)]

    def format(self) -> str:
        exp = CURRENCIES[self.currency].exponent
        value = Decimal(self.amount).scaleb(-exp)
        return f"{value:.{exp}f} {self.currency.upper()}"


def allocate(amount: int, ratios: Sequence[int | Decimal | Fraction]) -> list[int]:
    """Split ``amount`` by ``ratios`` with the largest-remainder method.

    The parts always sum to ``amount`` exactly; each part is within one minor unit of its
    exact share; ties go to the earlier ratio. Works for negative amounts (mirror image).
    """
    if type(amount) is not int:
        raise TypeError("amount must be int minor units")
    if not ratios:
        raise ValueError("ratios must not be empty")
    return _split(amount, _int_weights(tuple(ratios)))


def _split(amount: int, weights: tuple[int, ...]) -> list[int]:
    total = sum(weights)
    sign = -1 if amount < 0 else 1
    whole = abs(amount)
    # Exact share i is whole * w_i / total: its floor and remainder in integers (no Fraction
    # per call; every worker splits every payment).
    parts = []
    remainders = []
    for w in weights:
        q, r = divmod(whole * w, total)
        parts.append(q)
        remainders.append(r)
    short = whole - sum(parts)
    if short:
        # Hand the remaining units to the largest remainders, earliest first on ties.
        order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
        for i in order[:short]:
            parts[i] += 1
    return [sign * p for p in parts]


@lru_cache(maxsize=256)
def _int_weights(ratios: tuple[int | Decimal | Fraction, ...]) -> tuple[int, ...]:
    """The ratios as integers in the same proportions (over their common denominator)."""
    fracs = [Fraction(r) for r in ratios]
    if any(f < 0 for f in fracs):
        raise ValueError("ratios must not be negative")
    if not any(fracs):
        raise ValueError("ratios must not all be zero")
    denominator = math.lcm(*(f.denominator for f in fracs))
    return tuple(f.numerator * (denominator // f.denominator) for f in fracs)


def apply_rate(amount: int, rate: Decimal, rounding: str = ROUND_HALF_UP) -> int:
    """``amount * rate`` rounded to a whole minor unit with an explicit rounding mode."""
    if type(amount) is not int:
        raise TypeError("amount must be int minor units")
    return int((Decimal(amount) * rate).quantize(Decimal(1), rounding=rounding))


def split_fee(amount: int, rate: Decimal) -> tuple[int, int]:
    """Split ``amount`` into (fee, rest) at ``rate`` via allocate(); fee + rest == amount."""
    if type(amount) is not int:
        raise TypeError("amount must be int minor units")
    fee, rest = _split(amount, _fee_weights(rate))
    return fee, rest


@lru_cache(maxsize=64)
def _fee_weights(rate: Decimal) -> tuple[int, ...]:
    # Fractions, not Decimal arithmetic: 1 - rate must be exact whatever the Decimal context.
    ratio = Fraction(rate)
    return _int_weights((ratio, 1 - ratio))


__all__ = [
    "CURRENCIES",
    "ROUND_HALF_EVEN",
    "ROUND_HALF_UP",
    "ZERO_DECIMAL",
    "Currency",
    "Money",
    "allocate",
    "apply_rate",
    "currency",
    "split_fee",
]
