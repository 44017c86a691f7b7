"""Pure pieces of the sandbox: form decoding, fee maths, proration, calendar intervals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from payments.gateway import sign_payload
from payments.money import CURRENCIES
from payments.sandbox.currency import dispute_fee, exponent, min_charge, processing_fee, prorate
from payments.sandbox.forms import FormError, parse_form
from payments.sandbox.model import add_interval


def test_parse_form_nested_and_lists() -> None:
    body = ("amount=1500&metadata[tip_id]=7&metadata[note]=&expand[0]=latest_charge"
            "&expand[1]=customer&items[0][price]=price_1&items[0][quantity]=2"
            "&types[]=a&types[]=b&created[gte]=10")
    assert parse_form(body) == {
        "amount": "1500", "metadata": {"tip_id": "7", "note": ""},
        "expand": ["latest_charge", "customer"],
        "items": [{"price": "price_1", "quantity": "2"}],
        "types": ["a", "b"], "created": {"gte": "10"},
    }


def test_parse_form_matches_the_sdk_encoder() -> None:
    from stripe._encode import _api_encode

    params = {"metadata": {"a": "1"}, "items": [{"price": "p", "quantity": 2}],
              "expand": ["x", "y"], "confirm": True}
    encoded = "&".join(f"{k}={v}" for k, v in _api_encode(params))
    parsed = parse_form(encoded)
    assert parsed["items"] == [{"price": "p", "quantity": "2"}]
    assert parsed["expand"] == ["x", "y"] and parsed["confirm"] == "true"


@pytest.mark.parametrize("bad", ["a[b=1", "[x]=1", "a]b[=1"])
def test_parse_form_rejects_garbage(bad: str) -> None:
    with pytest.raises(FormError):
        parse_form(bad)


@given(st.integers(min_value=1, max_value=99_999_999),
       st.sampled_from(["usd", "eur", "sgd", "jpy", "krw", "idr"]))
def test_processing_fee_is_integer_half_up_and_bounded(amount: int, currency: str) -> None:
    fee = processing_fee(amount, currency)
    assert isinstance(fee, int) and 0 <= fee <= amount
    exact = Decimal(amount) * Decimal("0.029")
    pct = int(exact) + (1 if exact - int(exact) >= Decimal("0.5") else 0)
    fixed = processing_fee(10**8, currency) - (
        int(Decimal(10**8) * Decimal("0.029")))
    assert fee == min(amount, pct + fixed)


def test_fee_examples() -> None:
    assert processing_fee(1500, "usd") == 74
    assert processing_fee(1000, "jpy") == 69
    assert processing_fee(1, "usd") == 1
    assert dispute_fee("usd") == 1500
    assert exponent("jpy") == 0 and exponent("usd") == 2


def test_the_sandbox_takes_the_apps_minimums_and_exponents() -> None:
    # One minimum-charge table (payments.money), so both must count minor units alike.
    for code, cur in CURRENCIES.items():
        assert (exponent(code), min_charge(code)) == (cur.exponent, cur.min_charge), code


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**7),
       st.integers(min_value=1, max_value=10**7))
def test_prorate_is_integer_and_monotone(amount: int, part: int, whole: int) -> None:
    part = min(part, whole)
    value = prorate(amount, part, whole)
    assert isinstance(value, int) and 0 <= value <= amount
    assert prorate(amount, whole, whole) == amount


def test_add_interval_clamps_month_ends() -> None:
    jan31 = int(datetime(2027, 1, 31, 12, tzinfo=UTC).timestamp())
    feb = datetime.fromtimestamp(add_interval(jan31, "month", 1), UTC)
    assert (feb.month, feb.day) == (2, 28)
    mar = datetime.fromtimestamp(add_interval(add_interval(jan31, "month", 1), "month", 1, 31),
                                 UTC)
    assert (mar.month, mar.day) == (3, 31)
    assert add_interval(jan31, "week", 2) == jan31 + 14 * 86400
    year = datetime.fromtimestamp(add_interval(jan31, "year", 1), UTC)
    assert (year.year, year.month, year.day) == (2028, 1, 31)


@given(st.binary(max_size=200).map(lambda b: b.hex().encode()),
       st.text(alphabet=st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")),
               min_size=1, max_size=40))
def test_signatures_verify_with_the_sdk(payload: bytes, secret: str) -> None:
    header = sign_payload(payload, secret)
    stripe.WebhookSignature.verify_header(payload, header, secret, 300)
