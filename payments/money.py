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
    # Stripe's smallest charge in this currency, in minor units (from MIN_CHARGE).
    min_charge: int


# Stripe's minimum charge amounts, in minor units at our exponents (jpy, krw, vnd and clp are
# zero-decimal; idr and huf two-decimal, as Stripe takes them). The one table: the app's tip
# floors and the sandbox's amount_too_small both read it. Source: Stripe's "Minimum and maximum
# charge amounts", https://docs.stripe.com/currencies (all 24 rows, with bgn, czk, huf and ron,
# which we do not settle but the sandbox charges).
MIN_CHARGE: dict[str, int] = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50,
    "czk": 1500, "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50,
    "jpy": 50, "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200,
    "sek": 300, "sgd": 50, "thb": 1000,
    # Not in Stripe's table, which lists settlement currencies; its API reference puts the
    # minimum at "$0.50 US or equivalent in charge currency". So: USD 0.50 at mid-2025 rates,
    # rounded up to the next 1, 2 or 5 x 10^n of the major unit, which leaves room for the rate
    # to move before a charge falls under Stripe's floor.
    "idr": 1_000_000,  # IDR 10,000 (USD 0.50 ~ IDR 8,200)
    "krw": 1_000,  # KRW 1,000 (~ KRW 700)
    "php": 5_000,  # PHP 50 (~ PHP 29)
    "vnd": 20_000,  # VND 20,000 (~ VND 13,000)
    "clp": 500,  # CLP 500 (~ CLP 480)
}

# Currencies we settle, with their exponents. Stripe's three-decimal currencies (bhd, jod, kwd,
# omr, tnd) and its payout oddities (isk, huf, twd must be multiples of 100 minor units on
# payouts) are left out on purpose: they are refused as unsupported rather than mishandled.
CURRENCIES: dict[str, Currency] = {
    code: Currency(code, exponent, MIN_CHARGE[code])
    for code, exponent in (
        ("usd", 2), ("eur", 2), ("gbp", 2), ("aud", 2), ("cad", 2), ("chf", 2), ("nzd", 2),
        ("sgd", 2), ("hkd", 2), ("dkk", 2), ("nok", 2), ("sek", 2), ("pln", 2), ("brl", 2),
        ("mxn", 2), ("inr", 2), ("idr", 2), ("myr", 2), ("php", 2), ("thb", 2), ("aed", 2),
        ("jpy", 0), ("krw", 0), ("vnd", 0), ("clp", 0),
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
    "MIN_CHARGE",
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
