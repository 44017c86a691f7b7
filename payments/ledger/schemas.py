"""Marshmallow schemas of the ledger's read endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from payments.fields import CurrencyCode, ListQuerySchema


class CurrencyBalanceSchema(Schema):
    currency = fields.String(required=True)
    pending = fields.Integer(required=True)
    available = fields.Integer(required=True)
    reserved = fields.Integer(required=True)
    in_transit = fields.Integer(required=True)
    paid_out = fields.Integer(required=True)


class BalancesSchema(Schema):
    balances = fields.List(fields.Nested(CurrencyBalanceSchema), required=True)


class LedgerQuerySchema(ListQuerySchema):
    # marshmallow 4 ignores a validator's return value, so ListQuerySchema's lambda never
    # refuses anything; a Range validator raises.
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    currency = CurrencyCode()
    starting_after = fields.String(metadata={"description": "A ledger entry id (le_...)",
                                             "pattern": "^le_[A-Za-z0-9]+$"})
    effective_gte = fields.Integer(
        data_key="effective_at[gte]", validate=validate.Range(min=0)
    )
    effective_lt = fields.Integer(
        data_key="effective_at[lt]", validate=validate.Range(min=0)
    )


class SourceSchema(Schema):
    type = fields.String()
    id = fields.String()


class LedgerLineSchema(Schema):
    id = fields.String(required=True)
    object = fields.String(required=True)
    created = fields.Integer(required=True)
    effective_at = fields.Integer(required=True)
    journal = fields.String(required=True)
    kind = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "positive = to the creator"})
    currency = fields.String(required=True)
    account = fields.String(required=True)
    balance_after = fields.Integer(allow_none=True)
    source = fields.Nested(SourceSchema, allow_none=True)


class LedgerListSchema(Schema):
    data = fields.List(fields.Nested(LedgerLineSchema), required=True)
    has_more = fields.Boolean(required=True)


class TrialBalanceAccountSchema(Schema):
    account = fields.String(required=True)
    owner = fields.String(required=True)
    purpose = fields.String(required=True)
    currency = fields.String(required=True)
    balance = fields.Integer(required=True, metadata={"description": "signed, debit positive"})


class CurrencyTotalSchema(Schema):
    currency = fields.String(required=True)
    total = fields.Integer(required=True)


class TrialBalanceSchema(Schema):
    accounts = fields.List(fields.Nested(TrialBalanceAccountSchema), required=True)
    totals = fields.List(fields.Nested(CurrencyTotalSchema), required=True)


class DriftSchema(Schema):
    account_id = fields.Integer()
    name = fields.String()
    stored = fields.Integer()
    from_entries = fields.Integer()
    what = fields.String()


class VerifySchema(Schema):
    """What ``creatorpay ledger verify`` reports, over HTTP (journals by internal id)."""

    ok = fields.Boolean(required=True)
    accounts = fields.Integer()
    entries = fields.Integer()
    journals = fields.Integer()
    drifts = fields.List(fields.Nested(DriftSchema))
    unbalanced_journals = fields.List(fields.Integer())
    bad_leg_counts = fields.List(fields.Integer())
    orphan_journal_ids = fields.List(fields.Integer())
    currency_mismatches = fields.Integer()
    totals = fields.List(fields.Nested(CurrencyTotalSchema))
