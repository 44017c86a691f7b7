from __future__ import annotations

from marshmallow import Schema, fields, validate

from payments.fields import Amount, CurrencyCode, ListQuerySchema, StrictSchema
from payments.payouts.models import SCHEDULES


class PayoutCreateSchema(StrictSchema):
    currency = CurrencyCode(required=True)
    amount = Amount(metadata={"description": "Defaults to everything available"})


class PayoutSchema(Schema):
    id = fields.String()
    object = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    status = fields.String(metadata={"description": (
        "pending, in_transit, paid, returning (the bank payout failed; the transfer is being "
        "reversed), failed (the money is back in available; see failure_code/message)")})
    automatic = fields.Boolean()
    destination = fields.String()
    transfer = fields.String(allow_none=True)
    stripe_payout = fields.String(allow_none=True)
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    created = fields.Integer()
    paid_at = fields.Integer(allow_none=True)
    failed_at = fields.Integer(allow_none=True)


class PayoutPageSchema(Schema):
    data = fields.List(fields.Nested(PayoutSchema))
    has_more = fields.Boolean()


class PayoutListQuerySchema(ListQuerySchema):
    pass


class MoneySchema(Schema):
    amount = fields.Integer()
    currency = fields.String()


class PayoutSettingsSchema(Schema):
    schedule = fields.String()
    payouts_enabled = fields.Boolean()
    stripe_account_id = fields.String(allow_none=True)
    minimum = fields.Nested(MoneySchema)


class PayoutSettingsUpdateSchema(StrictSchema):
    schedule = fields.String(required=True, validate=validate.OneOf(SCHEDULES))
