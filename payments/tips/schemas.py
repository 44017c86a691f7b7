from __future__ import annotations

from marshmallow import Schema, fields, validate

from payments.fields import Amount, CurrencyCode, ListQuerySchema, StrictSchema


class TipCreateSchema(StrictSchema):
    creator = fields.String(required=True, metadata={"description": "Handle or id (cr_...)"})
    amount = Amount(required=True)
    currency = CurrencyCode(required=True)
    message = fields.String(allow_none=True, metadata={"description": "At most 500 characters"})
    anonymous = fields.Boolean(load_default=False)
    payment_method = fields.String(
        validate=validate.Length(1, 255),
        metadata={"description": "A Stripe payment method (pm_card_visa ...): confirm now"},
    )
    email = fields.Email(metadata={"description": "Required without a fan API key"})
    name = fields.String(validate=validate.Length(1, 100),
                         metadata={"description": "A guest's display name"})


class TipRefundCreateSchema(StrictSchema):
    amount = Amount(metadata={"description": "Defaults to everything still refundable"})
    reason = fields.String(validate=validate.Length(1, 200))


class TipperSchema(Schema):
    type = fields.String()
    id = fields.String()
    name = fields.String(allow_none=True)
    email = fields.String()


class TipRefundSchema(Schema):
    id = fields.String()
    amount = fields.Integer()
    status = fields.String()
    reason = fields.String(allow_none=True)
    created = fields.Integer()


class DisputeSchema(Schema):
    id = fields.String()
    status = fields.String(allow_none=True)
    amount = fields.Integer(allow_none=True)


class TipSchema(Schema):
    id = fields.String()
    object = fields.String()
    creator = fields.String()
    creator_handle = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    message = fields.String(allow_none=True)
    anonymous = fields.Boolean()
    tipper = fields.Nested(TipperSchema, allow_none=True)
    status = fields.String(metadata={"description": (
        "requires_payment, processing, succeeded, failed, refunded, partially_refunded, "
        "disputed")})
    amount_refunded = fields.Integer()
    refunds = fields.List(fields.Nested(TipRefundSchema))
    dispute = fields.Nested(DisputeSchema, allow_none=True)
    payment_intent = fields.String(allow_none=True)
    client_secret = fields.String(allow_none=True)
    next_action = fields.String(allow_none=True)
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    created = fields.Integer()


class TipPageSchema(Schema):
    data = fields.List(fields.Nested(TipSchema))
    has_more = fields.Boolean()


class TipListQuerySchema(ListQuerySchema):
    pass
