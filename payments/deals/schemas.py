from __future__ import annotations

from marshmallow import Schema, fields, validate

from payments.deals.models import DEAL_STATUSES, PLATFORMS
from payments.fields import Amount, CurrencyCode, ListQuerySchema, StrictSchema


class MilestoneCreateSchema(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(1, 200))
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS), metadata={
        "description": "instagram, tiktok, youtube, x, facebook, blog, or offline (an "
                       "appearance)"})
    deliverable = fields.String(required=True, validate=validate.Length(1, 2000))
    amount = Amount(required=True)
    due_date = fields.Date(required=True, format="%Y-%m-%d",
                           metadata={"description": "YYYY-MM-DD"})


class DealCreateSchema(StrictSchema):
    creator = fields.String(required=True, metadata={"description": "Handle or id (cr_...)"})
    title = fields.String(required=True, validate=validate.Length(1, 200))
    brief = fields.String(required=True, validate=validate.Length(1, 5000))
    currency = CurrencyCode(required=True)
    milestones = fields.List(fields.Nested(MilestoneCreateSchema), required=True,
                             validate=validate.Length(1, 20))
    review_days = fields.Integer(load_default=7, strict=True,
                                 validate=validate.Range(min=1, max=90))


class DealFundSchema(StrictSchema):
    payment_method = fields.String(
        validate=validate.Length(1, 255),
        metadata={"description": "A Stripe payment method (pm_card_visa ...): confirm now"})


class DealReasonSchema(StrictSchema):
    reason = fields.String(validate=validate.Length(1, 500), allow_none=True)


class MilestoneSubmitSchema(StrictSchema):
    proof_url = fields.Url(required=True, schemes={"http", "https"},
                           validate=validate.Length(1, 2000),
                           metadata={"format": "uri",
                                     "pattern": r"^https?://[a-z0-9-]+\.[a-z]{2,}/"})
    note = fields.String(validate=validate.Length(1, 2000), allow_none=True)


class MilestoneChangesSchema(StrictSchema):
    note = fields.String(required=True, validate=validate.Length(1, 2000))


class DealResolveSchema(StrictSchema):
    creator_amount = Amount(required=True, allow_zero=True)
    brand_refund_amount = Amount(required=True, allow_zero=True)


class DealListQuerySchema(ListQuerySchema):
    status = fields.String(validate=validate.OneOf(DEAL_STATUSES))


class DealEscrowSchema(Schema):
    funded = fields.Integer()
    released = fields.Integer()
    refunded = fields.Integer()
    frozen = fields.Integer()
    remaining = fields.Integer()


class MilestoneSchema(Schema):
    id = fields.String()
    object = fields.String()
    title = fields.String()
    platform = fields.String()
    deliverable = fields.String()
    amount = fields.Integer()
    due_date = fields.String()
    status = fields.String(metadata={"description": (
        "pending, submitted, changes_requested, released, canceled, resolved")})
    proof_url = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    change_note = fields.String(allow_none=True)
    revision_count = fields.Integer()
    submitted_at = fields.Integer(allow_none=True)
    review_due_at = fields.Integer(allow_none=True)
    released_at = fields.Integer(allow_none=True)
    released_by = fields.String(allow_none=True)
    platform_fee = fields.Integer(allow_none=True)
    processor_fee = fields.Integer(allow_none=True)
    creator_amount = fields.Integer(allow_none=True)


class DealProcessorFeeSchema(Schema):
    bearer = fields.String(metadata={"description": "platform or creator"})
    amount = fields.Integer(allow_none=True)


class DealDisputeSchema(Schema):
    opened_by = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    frozen = fields.Integer()
    stripe_dispute = fields.String(allow_none=True)
    stripe_status = fields.String(allow_none=True)
    stripe_amount = fields.Integer(allow_none=True)


class DealResolutionSchema(Schema):
    creator_amount = fields.Integer()
    brand_refund_amount = fields.Integer()


class DealRefundSchema(Schema):
    id = fields.String()
    amount = fields.Integer()
    reason = fields.String()
    status = fields.String()
    stripe_refund = fields.String(allow_none=True)
    created = fields.Integer()


class DealActorSchema(Schema):
    role = fields.String()
    id = fields.String(allow_none=True)


class DealTransitionSchema(Schema):
    action = fields.String()
    milestone = fields.String(allow_none=True)
    from_ = fields.String(allow_none=True, attribute="from", data_key="from")
    to = fields.String(allow_none=True)
    actor = fields.Nested(DealActorSchema)
    note = fields.String(allow_none=True)
    created = fields.Integer()


class DealSchema(Schema):
    id = fields.String()
    object = fields.String()
    brand = fields.String()
    brand_name = fields.String()
    creator = fields.String()
    creator_handle = fields.String()
    title = fields.String()
    brief = fields.String()
    currency = fields.String()
    amount = fields.Integer()
    review_days = fields.Integer()
    status = fields.String(metadata={"description": ", ".join(DEAL_STATUSES)})
    milestones = fields.List(fields.Nested(MilestoneSchema))
    escrow = fields.Nested(DealEscrowSchema)
    processor_fee = fields.Nested(DealProcessorFeeSchema)
    platform_fee_rate = fields.String()
    payment_intent = fields.String(allow_none=True)
    payment_status = fields.String(allow_none=True)
    client_secret = fields.String(allow_none=True)
    next_action = fields.String(allow_none=True)
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    dispute = fields.Nested(DealDisputeSchema, allow_none=True)
    resolution = fields.Nested(DealResolutionSchema, allow_none=True)
    refunds = fields.List(fields.Nested(DealRefundSchema))
    history = fields.List(fields.Nested(DealTransitionSchema))
    created = fields.Integer()
    accepted_at = fields.Integer(allow_none=True)
    funded_at = fields.Integer(allow_none=True)
    closed_at = fields.Integer(allow_none=True)


class DealPageSchema(Schema):
    data = fields.List(fields.Nested(DealSchema))
    has_more = fields.Boolean()
