from __future__ import annotations

import contextlib
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from payments.accounts.service import get_creator
from payments.auth import principal, require
from payments.db import request_session
from payments.errors import PaymentsError
from payments.gateway import GatewayError, idempotency_key
from payments.idempotency import idempotent
from payments.payouts import schemas, service
from payments.web import app_config, call_stripe

blp = Blueprint("payouts", __name__, url_prefix="/v1",
                description="Payouts to the creator's connected account")


def _creator_id() -> int:
    p = principal()
    assert p.owner_id is not None
    return p.owner_id


@blp.route("/creators/me/payouts")
class Payouts(MethodView):
    @require("creator")
    @blp.arguments(schemas.PayoutListQuerySchema, location="query")
    @blp.response(200, schemas.PayoutPageSchema)
    @blp.alt_response(404, description="starting_after: no such payout")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The creator's payouts, newest first."""
        rows, more = service.list_payouts(request_session(), _creator_id(), query["limit"],
                                          query.get("starting_after"))
        return {"data": [service.payout_view(p) for p in rows], "has_more": more}

    @require("creator")
    @blp.arguments(schemas.PayoutCreateSchema)
    @idempotent("payouts.create")
    @blp.response(201, schemas.PayoutSchema)
    @blp.alt_response(409, description=(
        "payouts_not_enabled (connected account cannot take payouts), insufficient_balance "
        "(less than the amount or the currency's minimum is available), "
        "idempotency_key_reused"))
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Pay out ``amount`` (default: everything available) of ``currency`` now.

        The money leaves ``available`` at once (``in_transit``); a refused transfer brings it
        back and the payout answers ``failed`` with the reason.
        """
        session = request_session()
        creator = get_creator(session, _creator_id())
        payout = service.create_payout(session, creator, data["currency"], data.get("amount"),
                                       app_config().payout_minimums)

        def refused(exc: GatewayError) -> dict[str, Any] | None:
            service.return_funds(session, payout, exc.code or "transfer_failed", exc.message)
            return None

        # The payout exists whatever Stripe answers, committed: refused (failed, the money
        # back in available, the reason shown) or not confirmed (pending: payouts.retry asks
        # Stripe again with the same key). Either way the answer is the payout.
        with contextlib.suppress(PaymentsError):
            call_stripe(
                session,
                lambda gateway: gateway.create_transfer(
                    amount=payout.amount, currency=payout.currency,
                    destination=payout.destination,
                    idempotency_key=idempotency_key("payout", payout.public_id),
                    metadata=service.transfer_metadata(payout, creator),
                    transfer_group=payout.public_id,
                    description=f"creatorpay payout {payout.public_id}"),
                record=lambda transfer: service.transfer_answered(session, payout, transfer),
                on_failure=refused,
            )
        return service.payout_view(payout)


@blp.route("/creators/me/payouts/<string:payout_id>")
class PayoutDetail(MethodView):
    @require("creator")
    @blp.response(200, schemas.PayoutSchema)
    @blp.alt_response(404, description="No such payout, or not yours")
    def get(self, payout_id: str) -> dict[str, Any]:
        """One payout."""
        return service.payout_view(
            service.creator_payout(request_session(), _creator_id(), payout_id))


@blp.route("/creators/me/payout-settings")
class PayoutSettings(MethodView):
    @require("creator")
    @blp.response(200, schemas.PayoutSettingsSchema)
    def get(self) -> dict[str, Any]:
        """The payout schedule, whether the connected account can take payouts, the minimum."""
        creator = get_creator(request_session(), _creator_id())
        return service.settings_view(creator, app_config().payout_minimums)

    @require("creator")
    @blp.arguments(schemas.PayoutSettingsUpdateSchema)
    @blp.response(200, schemas.PayoutSettingsSchema)
    def patch(self, data: dict[str, Any]) -> dict[str, Any]:
        """Set the automatic payout schedule: daily, weekly (default), monthly or manual."""
        session = request_session()
        creator = get_creator(session, _creator_id())
        service.update_schedule(session, creator, data["schedule"])
        session.commit()
        return service.settings_view(creator, app_config().payout_minimums)
