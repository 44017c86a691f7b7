from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from payments.accounts.models import Creator
from payments.accounts.service import get_creator
from payments.auth import principal, require
from payments.db import db, request_session
from payments.fields import CurrencyCode, StrictSchema
from payments.statements import render, service

blp = Blueprint("statements", __name__, url_prefix="/v1",
                description="Monthly statements (JSON, CSV, PDF)")

F = TypeVar("F", bound=Callable[..., Any])
CSV = "text/csv"
PDF = "application/pdf"


def _creator() -> Creator:
    p = principal()
    assert p.owner_id is not None
    return get_creator(request_session(), p.owner_id)


def with_period(fn: F) -> F:
    """404 for a malformed or future month, before the query string is read."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        service.check_period(_creator(), kwargs["period"])
        return fn(*args, **kwargs)

    return cast(F, wrapper)


class StatementListQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    starting_after = fields.String(metadata={"description": "A period (YYYY-MM)",
                                             "pattern": r"^[1-9]\d{3}-(0[1-9]|1[0-2])$"})
    currency = CurrencyCode()


class StatementQuerySchema(StrictSchema):
    currency = CurrencyCode(metadata={"description": "Default: the creator's currency"})
    lines_limit = fields.Integer(load_default=100, validate=validate.Range(min=0, max=1000),
                                 metadata={"description": "Lines in the JSON (the CSV: all)"})


class ExportQuerySchema(StrictSchema):
    currency = CurrencyCode()


class SummarySchema(Schema):
    object = fields.String()
    period = fields.String()
    currency = fields.String()
    status = fields.String(metadata={"description": "open | final"})


class SummaryPageSchema(Schema):
    data = fields.List(fields.Nested(SummarySchema))
    has_more = fields.Boolean()


class StatementLineSourceSchema(Schema):
    type = fields.String()
    id = fields.String()


class LineSchema(Schema):
    id = fields.String()
    journal = fields.String()
    effective_at = fields.Integer()
    created = fields.Integer()
    kind = fields.String()
    category = fields.String()
    account = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    source = fields.Nested(StatementLineSourceSchema, allow_none=True)
    late = fields.Boolean()


class StatementSchema(Schema):
    object = fields.String()
    creator = fields.String()
    period = fields.String()
    currency = fields.String()
    status = fields.String()
    checksum = fields.String(allow_none=True)
    opening_balance = fields.Integer()
    tips = fields.Integer()
    subscriptions = fields.Integer()
    deals = fields.Integer()
    processor_fees = fields.Integer()
    platform_fees = fields.Integer()
    refunds = fields.Integer()
    disputes = fields.Integer()
    adjustments = fields.Integer()
    payouts = fields.Integer()
    closing_balance = fields.Integer()
    line_count = fields.Integer()
    lines = fields.List(fields.Nested(LineSchema))
    has_more_lines = fields.Boolean()


@blp.route("/creators/me/statements")
class Statements(MethodView):
    @require("creator")
    @blp.arguments(StatementListQuerySchema, location="query")
    @blp.response(200, SummaryPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The creator's months, newest first: open until the month ends, then final."""
        after = query.get("starting_after")
        if after is not None and service.parse_period(after) is None:
            from payments.errors import InvalidRequest

            raise InvalidRequest("starting_after must be a period (YYYY-MM).",
                                 param="starting_after")
        rows, more = service.list_statements(request_session(), _creator(),
                                             limit=query["limit"], starting_after=after,
                                             currency=query.get("currency"))
        return {"data": rows, "has_more": more}


@blp.route("/creators/me/statements/<string:period>")
class StatementDetail(MethodView):
    @require("creator")
    @with_period
    @blp.arguments(StatementQuerySchema, location="query")
    @blp.response(200, StatementSchema, description=(
        "JSON; with Accept: text/csv one line per ledger line (header first), with "
        "Accept: application/pdf a PDF"))
    @blp.alt_response(404, description="Malformed month, or one not started yet")
    def get(self, query: dict[str, Any], period: str) -> Any:
        """A month's statement in a currency: JSON, CSV or PDF by ``Accept``."""
        session = request_session()
        creator = _creator()
        currency = query.get("currency") or creator.default_currency
        best = request.accept_mimetypes.best_match(["application/json", CSV, PDF])
        if best == CSV:
            # Read inside the request (a month; the whole history streams from
            # /creators/me/ledger/export), rendered in chunks.
            lines = list(service.lines(session, creator.id, currency, period))
            name = f"statement-{creator.handle}-{period}-{currency}.csv"
            return Response(render.csv_lines(lines), mimetype=CSV,
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        body = service.statement(session, creator, currency, period,
                                 lines_limit=query["lines_limit"])
        if best == PDF:
            name = f"statement-{creator.handle}-{period}-{currency}.pdf"
            return Response(render.pdf(body, creator.display_name, creator.handle),
                            mimetype=PDF,
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return body


@blp.route("/creators/me/ledger/export")
class LedgerExport(MethodView):
    @require("creator")
    @blp.arguments(ExportQuerySchema, location="query")
    @blp.response(200, description="text/csv, streamed: every line of the balance accounts")
    def get(self, query: dict[str, Any]) -> Any:
        """The whole history of the creator's balance in a currency, as CSV (streamed)."""
        creator = _creator()
        currency = query.get("currency") or creator.default_currency
        accs = service.balance_accounts(request_session(), creator.id, currency)

        def stream() -> Iterator[bytes]:
            with db.engine.connect() as conn:
                yield from render.history_csv(conn, accs)

        name = f"ledger-{creator.handle}-{currency}.csv"
        return Response(stream(), mimetype=CSV,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
