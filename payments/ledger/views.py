"""Read-only ledger endpoints: a creator's balance and lines, the admin trial balance."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE

from payments.auth import principal, require
from payments.db import request_session
from payments.errors import InvalidRequest
from payments.ids import PREFIXES
from payments.ledger import schemas, service

blp = Blueprint(
    "ledger", __name__, url_prefix="/v1", description="Balances, ledger lines, trial balance"
)


def _creator_id() -> int:
    p = principal()
    assert p.owner_id is not None
    return p.owner_id


@blp.route("/creators/me/balance")
class Balance(MethodView):
    @require("creator")
    @blp.response(200, schemas.BalancesSchema)
    def get(self) -> dict[str, Any]:
        """What the platform holds for the creator, per currency, in minor units."""
        return {"balances": service.creator_balances(request_session(), _creator_id())}


@blp.route("/creators/me/ledger")
class LedgerLines(MethodView):
    @require("creator")
    @blp.arguments(schemas.LedgerQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, schemas.LedgerListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The creator's ledger entries, newest first, each with the balance after it."""
        after = None
        if "starting_after" in args:
            after = service.parse_public_id(PREFIXES["entry"], args["starting_after"])
            if after is None:
                raise InvalidRequest(
                    "starting_after must be a ledger entry id (le_...).",
                    param="starting_after",
                )
        lines, more = service.creator_ledger(
            request_session(),
            _creator_id(),
            limit=args["limit"],
            starting_after=after,
            currency=args.get("currency"),
            effective_gte=args.get("effective_gte"),
            effective_lt=args.get("effective_lt"),
        )
        return {"data": lines, "has_more": more}


@blp.route("/admin/trial-balance")
class TrialBalance(MethodView):
    @require("admin")
    @blp.response(200, schemas.TrialBalanceSchema)
    def get(self) -> dict[str, Any]:
        """Every ledger account's balance (debit positive); each currency totals zero."""
        return service.trial_balance(request_session())


@blp.route("/admin/ledger/verify")
class Verify(MethodView):
    @require("admin")
    @blp.response(200, schemas.VerifySchema)
    def get(self) -> dict[str, Any]:
        """``creatorpay ledger verify`` over HTTP: every balance recomputed from its entries,
        every journal balanced, the ledger zero per currency; ``ok`` false on any drift."""
        report = service.verify(request_session())
        return {
            "ok": report.ok, "accounts": report.accounts, "entries": report.entries,
            "journals": report.journals, "drifts": report.drifts[:100],
            "unbalanced_journals": report.unbalanced_journals[:100],
            "bad_leg_counts": report.bad_leg_counts[:100],
            "orphan_journal_ids": report.orphan_journal_ids[:100],
            "currency_mismatches": report.currency_mismatches,
            "totals": [{"currency": c, "total": t} for c, t in sorted(report.totals.items())],
        }
