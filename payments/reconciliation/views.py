from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validates

from payments.auth import require
from payments.db import request_session
from payments.fields import StrictSchema
from payments.gateway import GatewayError, TransientGatewayError, gateway_for
from payments.reconciliation import service
from payments.web import app_config, gateway_error

blp = Blueprint("reconciliation", __name__, url_prefix="/v1",
                description="The ledger against Stripe, per day")


class ReconciliationQuerySchema(StrictSchema):
    date = fields.String(required=True, metadata={"description": "YYYY-MM-DD (UTC)",
                                                  "format": "date"})

    @validates("date")
    def _check(self, value: str, **_: Any) -> None:
        try:
            service.parse_day(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class ReportSchema(Schema):
    object = fields.String()
    date = fields.String()
    created = fields.Integer()
    clean = fields.Boolean()
    currencies = fields.List(fields.Dict())
    differences = fields.List(fields.Dict())
    payouts = fields.List(fields.Dict())
    clearing = fields.List(fields.Dict())
    balance_transactions = fields.Integer()
    journals = fields.Integer()


@blp.route("/admin/reconciliation")
class Reconciliation(MethodView):
    @require("admin")
    @blp.arguments(ReconciliationQuerySchema, location="query")
    @blp.response(200, ReportSchema)
    @blp.alt_response(503, description="Stripe unreachable")
    @blp.alt_response(502, description="Stripe refused the listing")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Reconcile a day now: per currency Stripe's balance transactions against the
        ledger, our payouts against Stripe's transfers, clearing accounts; every difference
        with both sides' ids. The report is kept (the daily beat job makes yesterday's)."""
        session = request_session()
        try:
            report = service.reconcile(session, gateway_for(app_config()), query["date"],
                                       store=True)
        except (GatewayError, TransientGatewayError) as exc:
            raise gateway_error(exc) from None
        session.commit()
        return report
