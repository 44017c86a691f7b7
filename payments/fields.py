"""Marshmallow fields and base schema shared by every domain's schemas."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from payments.money import CURRENCIES


class StrictSchema(Schema):
    """Unknown fields are a 400, never silently dropped."""

    class Meta:
        unknown = RAISE


MAX_AMOUNT = 10**15


def _documented(kwargs: dict[str, Any], **properties: Any) -> dict[str, Any]:
    """``kwargs`` with JSON-schema ``properties`` in the field's metadata, which apispec puts
    in the OpenAPI document: a field that validates in code says so there too (what the
    document calls valid, we accept). A caller's own metadata wins."""
    return {**kwargs, "metadata": {**properties, **kwargs.get("metadata", {})}}


class Amount(fields.Integer):
    """A positive amount in minor units: a JSON integer and nothing else.

    ``1500.0``, ``1.5e3``, ``true`` and ``"1500"`` are all refused; JSON decoding already
    turns a fraction or exponent into a float, which we reject by type.
    """

    default_error_messages = {  # noqa: RUF012
        "invalid": "Must be an integer amount in minor units (no fraction, exponent or string).",
        "positive": "Must be greater than zero.",
    }

    def __init__(self, *, allow_zero: bool = False, **kwargs: Any) -> None:
        # A Range validator documents its own bounds; without one, ours.
        bounds = {} if "validate" in kwargs else {"maximum": MAX_AMOUNT}
        super().__init__(strict=True, **_documented(kwargs, minimum=0 if allow_zero else 1,
                                                     **bounds))
        self.allow_zero = allow_zero

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if type(value) is not int:
            raise self.make_error("invalid")
        if value < 0 or (value == 0 and not self.allow_zero):
            raise self.make_error("positive")
        if value > MAX_AMOUNT:
            raise ValidationError("Amount is too large.")
        return value


class CurrencyCode(fields.String):
    """An ISO 4217 code we support, accepted in any case, always lowercase inside."""

    def __init__(self, **kwargs: Any) -> None:
        codes = sorted(CURRENCIES)
        super().__init__(**_documented(kwargs, enum=codes + [c.upper() for c in codes]))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("Must be an ISO 4217 currency code.")
        code = value.strip().lower()
        if code not in CURRENCIES:
            raise ValidationError(f"Unsupported currency {value!r}.")
        return code


class CountryCode(fields.String):
    """ISO 3166 alpha-2, in any case; always capitals inside."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_documented(kwargs, pattern="^[A-Za-z]{2}$"))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if (not isinstance(value, str) or len(value) != 2 or not value.isascii()
                or not value.isalpha()):
            raise ValidationError("Must be an ISO 3166 alpha-2 country code.")
        return value.upper()


def nul_path(data: Any, prefix: str = "") -> str | None:
    """The dotted path of the first string holding a NUL character in parsed input, or None.

    No client text may carry one: PostgreSQL refuses it in text (a 500 where SQLite stored
    it), and no name, message or id needs it.
    """
    if isinstance(data, str):
        return (prefix.rstrip(".") or "body") if "\x00" in data else None
    if isinstance(data, dict) or hasattr(data, "getlist"):
        for key in data:
            if "\x00" in str(key):
                return prefix.rstrip(".") or "body"
            values = data.getlist(key) if hasattr(data, "getlist") else [data[key]]
            for value in values:
                found = nul_path(value, f"{prefix}{key}.")
                if found:
                    return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = nul_path(value, f"{prefix}{i}.")
            if found:
                return found
    return None


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    param = fields.String()
    # What some errors add (docs/api.md): the bank's reason for a decline, the object the
    # refused request made or found, the figures behind a refusal about money.
    decline_code = fields.String(allow_none=True)
    tip = fields.String()
    subscription = fields.String()
    deal = fields.String()
    available = fields.Integer()
    minimum = fields.Integer()
    frozen = fields.Integer()
    currency = fields.String()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class ListQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    starting_after = fields.String()
