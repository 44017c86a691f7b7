from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate, validates_schema

from payments.fields import Amount, CountryCode, CurrencyCode, StrictSchema

HANDLE_RE = re.compile(r"^[a-z0-9_]{3,30}$")


class CreatorCreateSchema(StrictSchema):
    handle = fields.String(
        required=True,
        validate=validate.Regexp(HANDLE_RE, error="Must be 3-30 characters of a-z, 0-9 and _."),
    )
    display_name = fields.String(required=True, validate=validate.Length(1, 100))
    email = fields.Email(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["kol", "influencer"]))
    country = CountryCode(required=True)
    default_currency = CurrencyCode(required=True)
    profession = fields.String(allow_none=True, validate=validate.Length(1, 100))

    @validates_schema
    def _kol_profession(self, data: dict[str, object], **_: object) -> None:
        if data.get("kind") == "kol" and not data.get("profession"):
            raise ValidationError("A KOL states a profession.", field_name="profession")


class TipGoalSchema(StrictSchema):
    amount = Amount(required=True)
    title = fields.String(required=True, validate=validate.Length(1, 200))


class TipGoalOutSchema(TipGoalSchema):
    currency = fields.String()
    progress = fields.Integer()


class CreatorUpdateSchema(StrictSchema):
    display_name = fields.String(validate=validate.Length(1, 100))
    profession = fields.String(validate=validate.Length(1, 100))
    min_tip_amount = Amount(allow_none=True)
    suggested_amounts = fields.List(Amount(), validate=validate.Length(max=6))
    tip_goal = fields.Nested(TipGoalSchema, allow_none=True)


class TipSettingsSchema(StrictSchema):
    currency = fields.String()
    min_tip_amount = fields.Integer()
    suggested_amounts = fields.List(fields.Integer())
    tip_goal = fields.Nested(TipGoalOutSchema, allow_none=True)


class CreatorPublicSchema(StrictSchema):
    id = fields.String(attribute="public_id")
    object = fields.Constant("creator")
    handle = fields.String()
    display_name = fields.String()
    kind = fields.String()
    profession = fields.String(allow_none=True)
    country = fields.String()
    default_currency = fields.String()
    created = fields.Integer()
    tip_settings = fields.Nested(TipSettingsSchema)
    tiers = fields.List(fields.Dict())


class CreatorPrivateSchema(CreatorPublicSchema):
    email = fields.String()
    stripe_account_id = fields.String(allow_none=True)


class CreatorAdminSchema(CreatorPrivateSchema):
    tips_blocked = fields.Boolean()
    tips_blocked_reason = fields.String(allow_none=True)


class TipsBlockSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(1, 200))


class CreatorSignupSchema(CreatorPrivateSchema):
    api_key = fields.String()


class FanCreateSchema(StrictSchema):
    email = fields.Email(required=True)
    display_name = fields.String(required=True, validate=validate.Length(1, 100))


class FanSchema(StrictSchema):
    id = fields.String(attribute="public_id")
    object = fields.Constant("fan")
    email = fields.String()
    display_name = fields.String()
    created = fields.Integer()
    api_key = fields.String()


class BrandCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    email = fields.Email(required=True)
    country = CountryCode(required=True)


class BrandSchema(StrictSchema):
    id = fields.String(attribute="public_id")
    object = fields.Constant("brand")
    name = fields.String()
    email = fields.String()
    country = fields.String()
    created = fields.Integer()
    api_key = fields.String()


class ConnectSchema(StrictSchema):
    account_id = fields.String()
    onboarding_url = fields.String()
