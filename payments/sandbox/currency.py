"""Currency facts and the sandbox fee model (integer minor units, Decimal rates, no floats)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from payments.money import MIN_CHARGE

# Stripe's zero-decimal currencies; everything else in SUPPORTED is two-decimal here.
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
     "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
# Stripe's three-decimal currencies are refused by the sandbox (as by the app).
SUPPORTED = frozenset(
    ["usd", "eur", "gbp", "sgd", "aud", "cad", "chf", "nzd", "hkd", "idr", "myr", "php", "thb",
     "inr", "mxn", "brl", "sek", "nok", "dkk", "pln", "czk", "huf", "ron", "aed", "zar", "twd"]
) | ZERO_DECIMAL

# Fixed part of the processing fee, per currency (minor units).
FIXED_FEE = {"usd": 30, "eur": 25, "gbp": 20, "sgd": 50, "aud": 30, "cad": 30, "chf": 30,
             "jpy": 40, "krw": 400, "vnd": 7000, "idr": 300000}
# Dispute fee per currency (minor units); USD 15.00.
DISPUTE_FEE = {"usd": 1500, "eur": 2000, "gbp": 2000, "sgd": 2000, "aud": 2500, "cad": 1500,
               "jpy": 2000, "krw": 20000, "vnd": 350000, "idr": 25000000}

PERCENT_FEE = Decimal("0.029")


def exponent(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 2


def fixed_fee(currency: str) -> int:
    if currency in FIXED_FEE:
        return FIXED_FEE[currency]
    return 30 if exponent(currency) == 2 else 50


def dispute_fee(currency: str) -> int:
    if currency in DISPUTE_FEE:
        return DISPUTE_FEE[currency]
    return 1500 if exponent(currency) == 2 else 2000


def min_charge(currency: str) -> int:
    """Stripe's minimum charge, from the app's table (``payments.money.MIN_CHARGE``).

    Currencies in neither Stripe's table nor the app's (zar, twd, the zero-decimal francs...)
    keep the sandbox's old floor of 50 minor units: creatorpay refuses them, so only direct
    sandbox calls can charge them.
    """
    return MIN_CHARGE.get(currency, 50)


def round_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def processing_fee(amount: int, currency: str, percent: Decimal = PERCENT_FEE) -> int:
    """Stripe's card fee: percent of the amount (half up) plus a fixed part, capped at amount."""
    fee = round_half_up(Decimal(amount) * percent) + fixed_fee(currency)
    return min(fee, amount)


def prorate(amount: int, numerator: int, denominator: int) -> int:
    """``amount * numerator / denominator`` rounded half up, in integers."""
    if denominator <= 0:
        return 0
    return round_half_up(Decimal(amount) * Decimal(numerator) / Decimal(denominator))
