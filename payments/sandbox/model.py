"""Shared pieces of the sandbox model: templates, errors, params, test cards, clock maths."""

from __future__ import annotations

import calendar
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson

from payments.sandbox import currency as cur

Obj = dict[str, Any]

DEFAULT_API_VERSION = "2026-10-28.endive"
DAY = 86400
CHARGE_AVAILABLE_DELAY = 2 * DAY
PAYOUT_ARRIVAL_DELAY = 2 * DAY
INVOICE_RETRY_DELAYS = (3 * DAY, 5 * DAY, 7 * DAY)  # after the first failed attempt
INCOMPLETE_EXPIRY = 23 * 3600

# ------------------------------------------------------------------ templates


def _load_templates() -> dict[str, str]:
    raw = resources.files("payments.sandbox").joinpath("fixtures.json").read_text("utf-8")
    data = json.loads(raw)["resources"]
    return {name: json.dumps(obj) for name, obj in data.items()}


TEMPLATES = _load_templates()


def template(resource: str) -> Obj:
    """A fresh copy of Stripe's published fixture for ``resource``."""
    obj = orjson.loads(TEMPLATES[resource])
    assert isinstance(obj, dict)
    return obj


def _invoice_line_template() -> str:
    return json.dumps(template("invoice")["lines"]["data"][0])


INVOICE_LINE_TEMPLATE = _invoice_line_template()

# ------------------------------------------------------------------ errors


class ApiError(Exception):
    """A Stripe-shaped error answer."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: Obj | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}

    def body(self) -> Obj:
        err: Obj = {"type": self.type, "message": self.message}
        if self.code is not None:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            err["param"] = self.param
        if self.decline_code is not None:
            err["decline_code"] = self.decline_code
        err.update(self.extra)
        return {"error": err}


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request_error", message, code=code, param=param)


def missing(kind: str, ident: str, param: str = "id") -> ApiError:
    return ApiError(
        404,
        "invalid_request_error",
        f"No such {kind}: '{ident}'",
        code="resource_missing",
        param=param,
    )


# ------------------------------------------------------------------ params


def p_str(p: Obj, name: str, *, required: bool = False) -> str | None:
    v = p.get(name)
    if v is None or v == "":
        if required:
            raise invalid(f"Missing required param: {name}.", name, "parameter_missing")
        return None
    if not isinstance(v, str):
        raise invalid(f"Invalid string: {name}", name)
    return v


def p_req(p: Obj, name: str) -> str:
    v = p_str(p, name, required=True)
    assert v is not None
    return v


def p_int(p: Obj, name: str, *, required: bool = False, minimum: int | None = None) -> int | None:
    v = p.get(name)
    if v is None or v == "":
        if required:
            raise invalid(f"Missing required param: {name}.", name, "parameter_missing")
        return None
    if not isinstance(v, str) or not v.lstrip("-").isdigit():
        raise invalid(f"Invalid integer: {v}", name, "parameter_invalid_integer")
    n = int(v)
    if minimum is not None and n < minimum:
        raise invalid(
            f"This value must be greater than or equal to {minimum}.", name,
            "parameter_invalid_integer"
        )
    return n


def p_bool(p: Obj, name: str, default: bool = False) -> bool:
    v = p.get(name)
    if v is None or v == "":
        return default
    if v in ("true", "True", "1"):
        return True
    if v in ("false", "False", "0"):
        return False
    raise invalid(f"Invalid boolean: {v}", name)


def p_dict(p: Obj, name: str) -> Obj:
    v = p.get(name)
    if v is None or v == "":
        return {}
    if not isinstance(v, dict):
        raise invalid(f"Invalid object: {name}", name)
    return v


def p_list(p: Obj, name: str) -> list[Any]:
    v = p.get(name)
    if v is None or v == "":
        return []
    if isinstance(v, dict):
        return list(v.values())
    if not isinstance(v, list):
        return [v]
    return v


def p_metadata(p: Obj, existing: Obj | None = None) -> Obj:
    out: Obj = dict(existing or {})
    if "metadata" not in p:
        return out
    raw = p["metadata"]
    if raw == "":
        return {}
    if not isinstance(raw, dict):
        raise invalid("Invalid metadata: must be an object", "metadata")
    for k, v in raw.items():
        if not isinstance(v, str):
            raise invalid("Invalid metadata value", f"metadata[{k}]")
        if len(k) > 40:
            raise invalid("Metadata keys can be at most 40 characters.", f"metadata[{k}]")
        if len(v) > 500:
            raise invalid("Metadata values can be at most 500 characters.", f"metadata[{k}]")
        if v == "":
            out.pop(k, None)
        else:
            out[k] = v
    if len(out) > 50:
        raise invalid("Metadata can have at most 50 keys.", "metadata")
    return out


def p_currency(p: Obj, name: str = "currency") -> str:
    c = p_req(p, name).lower()
    if c not in cur.SUPPORTED:
        raise invalid(f"Invalid currency: {c}.", name, "parameter_invalid_string")
    return c


def created_filter(p: Obj, name: str = "created") -> Callable[[int], bool] | None:
    v = p.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, str):
        exact = p_int(p, name)
        return lambda t: t == exact
    if not isinstance(v, dict):
        raise invalid(f"Invalid {name}", name)
    bounds: list[tuple[str, int]] = []
    for op in ("gt", "gte", "lt", "lte"):
        if op in v:
            n = p_int(v, op)
            assert n is not None
            bounds.append((op, n))
    unknown = set(v) - {"gt", "gte", "lt", "lte"}
    if unknown:
        raise invalid(f"Received unknown parameter: {name}[{sorted(unknown)[0]}]", name,
                      "parameter_unknown")

    def check(t: int) -> bool:
        for op, n in bounds:
            if (
                (op == "gt" and not t > n)
                or (op == "gte" and not t >= n)
                or (op == "lt" and not t < n)
                or (op == "lte" and not t <= n)
            ):
                return False
        return True

    return check


# ------------------------------------------------------------------ test cards

@dataclass(frozen=True)
class Card:
    brand: str
    last4: str
    funding: str = "credit"
    country: str = "US"
    decline_code: str | None = None  # declines on charge
    decline_on_attach: bool = False
    error_code: str = "card_declined"
    three_ds: bool = False  # always requires authentication
    dispute: bool = False
    bypass_pending: bool = False
    refund_fails: bool = False


CARDS: dict[str, Card] = {
    "pm_card_visa": Card("visa", "4242"),
    "pm_card_visa_debit": Card("visa", "5556", "debit"),
    "pm_card_mastercard": Card("mastercard", "4444"),
    "pm_card_amex": Card("amex", "8431"),
    "pm_card_us": Card("visa", "4242"),
    "pm_card_bypassPending": Card("visa", "0077", bypass_pending=True),
    "pm_card_chargeDeclined": Card("visa", "0002", decline_code="generic_decline",
                                   decline_on_attach=True),
    "pm_card_chargeDeclinedInsufficientFunds": Card(
        "visa", "9995", decline_code="insufficient_funds", decline_on_attach=True),
    "pm_card_chargeDeclinedExpiredCard": Card(
        "visa", "0069", decline_code="expired_card", error_code="expired_card",
        decline_on_attach=True),
    "pm_card_chargeDeclinedIncorrectCvc": Card(
        "visa", "0127", decline_code="incorrect_cvc", error_code="incorrect_cvc",
        decline_on_attach=True),
    "pm_card_chargeDeclinedFraudulent": Card(
        "visa", "0019", decline_code="fraudulent", decline_on_attach=True),
    "pm_card_chargeCustomerFail": Card("visa", "0341", decline_code="generic_decline"),
    "pm_card_createDispute": Card("visa", "0259", dispute=True),
    "pm_card_authenticationRequired": Card("visa", "3184", three_ds=True),
    "pm_card_threeDSecure2Required": Card("visa", "3220", three_ds=True),
    "pm_card_refundFail": Card("visa", "5126", refund_fails=True),
}
CARDS["pm_card_createDisputeInquiry"] = CARDS["pm_card_createDispute"]
# Stripe's test tokens map onto the same cards.
for _tok, _pm in (("tok_visa", "pm_card_visa"), ("tok_mastercard", "pm_card_mastercard"),
                  ("tok_chargeDeclined", "pm_card_chargeDeclined"),
                  ("tok_createDispute", "pm_card_createDispute")):
    CARDS[_tok] = CARDS[_pm]

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "fraudulent": "Your card was declined.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
}

# ------------------------------------------------------------------ helpers


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_UNBIASED = 256 - 256 % len(_ALPHABET)  # bytes below this map evenly onto the alphabet


def _rand(n: int = 24) -> str:
    """``n`` random characters of ``_ALPHABET`` (one read of the OS's randomness, not one a
    character: ids are made for every object and event a clock advance creates)."""
    out: list[str] = []
    while len(out) < n:
        out.extend(_ALPHABET[b % len(_ALPHABET)] for b in secrets.token_bytes(2 * n)
                   if b < _UNBIASED)
    return "".join(out[:n])


def add_interval(ts: int, interval: str, count: int, anchor_day: int | None = None) -> int:
    """``ts`` moved forward by ``count`` intervals (calendar months clamp the day)."""
    if interval == "day":
        return ts + count * DAY
    if interval == "week":
        return ts + count * 7 * DAY
    dt = datetime.fromtimestamp(ts, UTC)
    months = count * (12 if interval == "year" else 1)
    total = dt.month - 1 + months
    year, month = dt.year + total // 12, total % 12 + 1
    day = min(anchor_day or dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


@dataclass
class Ctx:
    """One API request's context."""

    account: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    api_version: str | None = None


@dataclass(order=True)
class Job:
    due: int
    seq: int
    name: str = field(compare=False)
    args: tuple[Any, ...] = field(compare=False, default=())


