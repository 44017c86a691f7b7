from __future__ import annotations

from marshmallow import Schema, fields, validate

from payments.fields import Amount, CurrencyCode, ListQuerySchema, StrictSchema
from payments.subscriptions.models import ENDED_STATUSES, LIVE_STATUSES
from payments.subscriptions.service import INTERVALS, MAX_TRIAL_DAYS


def _bool(**kwargs: object) -> fields.Boolean:
    """JSON true or false only (marshmallow also takes "yes", 1, "on" ...)."""
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)  # type: ignore[arg-type]


class TierCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 100))
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    amount = Amount(required=True)
    currency = CurrencyCode(required=True)
    interval = fields.String(required=True, validate=validate.OneOf(INTERVALS))
    trial_days = Amount(allow_zero=True, allow_none=True,
                        validate=validate.Range(0, MAX_TRIAL_DAYS))
    max_subscribers = Amount(allow_none=True, validate=validate.Range(min=1),
                             metadata={"description": "Sold out at this many subscribers"})


class TierUpdateSchema(StrictSchema):
    name = fields.String(validate=validate.Length(1, 100))
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    amount = Amount(metadata={"description": "A new price for new subscribers"})
    trial_days = Amount(allow_zero=True, allow_none=True,
                        validate=validate.Range(0, MAX_TRIAL_DAYS))
    max_subscribers = Amount(allow_none=True, validate=validate.Range(min=1))
    active = _bool(metadata={"description": "false archives the tier"})
    archived = _bool()


class TierSchema(Schema):
    id = fields.String()
    object = fields.String()
    creator = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    amount = fields.Integer()
    currency = fields.String()
    interval = fields.String()
    trial_days = fields.Integer(allow_none=True)
    max_subscribers = fields.Integer(allow_none=True)
    active = fields.Boolean()
    sold_out = fields.Boolean()
    subscriber_count = fields.Integer()
    stripe_price = fields.String(allow_none=True)
    created = fields.Integer()


class SubscriptionCreateSchema(StrictSchema):
    tier = fields.String(required=True, validate=validate.Length(1, 60))
    payment_method = fields.String(
        validate=validate.Length(1, 255),
        metadata={"description": "A Stripe payment method (pm_card_visa ...): pay now"})


class CancelSchema(StrictSchema):
    at_period_end = _bool(load_default=True)


class ResumeSchema(StrictSchema):
    pass


class ChangeSchema(StrictSchema):
    tier = fields.String(required=True, validate=validate.Length(1, 60))


class RefundCreateSchema(StrictSchema):
    invoice = fields.String(validate=validate.Length(1, 255),
                            metadata={"description": "in_...; default the latest paid one"})
    amount = Amount(metadata={"description": "Defaults to everything still refundable"})
    reason = fields.String(validate=validate.Length(1, 200))


class FanRefSchema(Schema):
    id = fields.String()
    name = fields.String()


class InvoiceSchema(Schema):
    id = fields.String()
    object = fields.String()
    status = fields.String()
    billing_reason = fields.String(allow_none=True)
    currency = fields.String()
    total = fields.Integer()
    amount_due = fields.Integer()
    amount_paid = fields.Integer()
    amount_refunded = fields.Integer()
    attempt_count = fields.Integer()
    period_start = fields.Integer(allow_none=True)
    period_end = fields.Integer(allow_none=True)
    created = fields.Integer()
    paid_at = fields.Integer(allow_none=True)


class SubscriptionSchema(Schema):
    id = fields.String()
    object = fields.String()
    creator = fields.String()
    creator_handle = fields.String()
    tier = fields.String()
    tier_name = fields.String()
    fan = fields.Nested(FanRefSchema)
    status = fields.String(metadata={"description": ", ".join(LIVE_STATUSES + ENDED_STATUSES)})
    amount = fields.Integer()
    currency = fields.String()
    interval = fields.String()
    cancel_at_period_end = fields.Boolean()
    current_period_start = fields.Integer(allow_none=True)
    current_period_end = fields.Integer(allow_none=True)
    trial_end = fields.Integer(allow_none=True)
    canceled_at = fields.Integer(allow_none=True)
    ended_at = fields.Integer(allow_none=True)
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    latest_invoice = fields.String(allow_none=True)
    invoices = fields.List(fields.Nested(InvoiceSchema))
    client_secret = fields.String(allow_none=True)
    created = fields.Integer()


class SubscriptionPageSchema(Schema):
    data = fields.List(fields.Nested(SubscriptionSchema))
    has_more = fields.Boolean()


class SubscriptionListQuerySchema(ListQuerySchema):
    status = fields.String(validate=validate.OneOf(LIVE_STATUSES + ENDED_STATUSES))
