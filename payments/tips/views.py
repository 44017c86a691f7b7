from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from payments.accounts.models import Creator, Fan
from payments.auth import current_principal, principal, require
from payments.db import request_session
from payments.errors import InvalidRequest
from payments.gateway import (
    CardError,
    GatewayError,
    TransientGatewayError,
    gateway_for,
    idempotency_key,
)
from payments.idempotency import idempotent
from payments.tips import schemas, service
from payments.tips.models import Tip
from payments.web import app_config, call_stripe, gateway_error

blp = Blueprint("tips", __name__, url_prefix="/v1", description="Tips from fans to creators")

F = TypeVar("F", bound=Callable[..., Any])


def _viewer() -> service.Viewer:
    p = current_principal(optional=True)
    return service.Viewer("guest", None) if p is None else service.Viewer(p.role, p.owner_id)


def with_tip(fn: F) -> F:
    """Load the tip in the path (404 unless it is the principal's) before the body is read."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.tip = service.get_tip(request_session(), kwargs["tip_id"], _viewer())
        return fn(*args, **kwargs)

    return cast(F, wrapper)


def card_fingerprint(payment_method: str) -> str | None:
    """Stripe's fingerprint of the card (the same card, the same value), for the per-card
    rule. An unknown payment method is the client's mistake (400), as Stripe would say."""
    try:
        found = gateway_for(app_config()).retrieve_payment_method(payment_method)
    except GatewayError as exc:
        if exc.http_status in (400, 404):
            raise InvalidRequest(exc.message, code=exc.code or "invalid_payment_method",
                                 param="payment_method") from None
        raise gateway_error(exc) from None
    except TransientGatewayError as exc:
        raise gateway_error(exc) from None
    card = found.get("card")
    fingerprint = card.get("fingerprint") if isinstance(card, dict) else None
    return fingerprint if isinstance(fingerprint, str) and fingerprint else None


@blp.route("/tips")
class Tips(MethodView):
    @require("fan", allow_anonymous=True)
    @blp.arguments(schemas.TipCreateSchema)
    @idempotent("tips.create")
    @blp.response(201, schemas.TipSchema)
    @blp.alt_response(402, description="Card declined; no money moved")
    @blp.alt_response(404, description="Unknown creator (param: creator)")
    @blp.alt_response(409, description="Idempotency-Key reused with another body, or the "
                      "creator is not accepting tips (creator_blocked)")
    @blp.alt_response(429, description="Too many tips from this fan or card (tip_velocity)")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Tip a creator, as a fan or as a guest with an email.

        With ``payment_method`` the payment is confirmed now; otherwise the answer carries
        ``client_secret`` for Stripe.js.
        """
        session = request_session()
        viewer = _viewer()
        config = app_config()
        rules = service.TipRules(config.max_tip_amount, config.tip_velocity_per_fan,
                                 config.tip_velocity_per_card)
        tip = service.create_tip(session, data, fan_id=viewer.owner_id, rules=rules)
        creator = session.get(Creator, tip.creator_id)
        assert creator is not None
        email = data.get("email")
        if viewer.owner_id is not None:
            fan = session.get(Fan, viewer.owner_id)
            email = fan.email if fan is not None else email
        metadata = service.payment_metadata(tip, creator)
        pm = data.get("payment_method")
        if pm and rules.per_card is not None:
            service.apply_card_rule(session, tip, card_fingerprint(pm), rules)

        def declined(exc: GatewayError) -> dict[str, Any] | None:
            if not isinstance(exc, CardError):
                return None
            if exc.payment_intent:
                service.apply_payment_intent(session, tip, exc.payment_intent)
            service.record_decline(session, tip, exc.decline_code or exc.code or "card_declined",
                                   exc.message)
            return {"tip": tip.public_id}

        call_stripe(
            session,
            lambda gateway: gateway.create_payment_intent(
                amount=tip.amount, currency=tip.currency, metadata=metadata,
                idempotency_key=idempotency_key("tip", tip.public_id),
                payment_method=pm, confirm=True if pm else None,
                receipt_email=email, description=f"Tip to @{creator.handle}",
            ),
            record=lambda intent: service.apply_payment_intent(session, tip, intent),
            on_failure=declined,
        )
        return service.tip_view(session, tip, viewer)


@blp.route("/tips/<string:tip_id>")
class TipDetail(MethodView):
    @require("fan", "creator", "admin")
    @blp.response(200, schemas.TipSchema)
    @blp.alt_response(404, description="No such tip, or not yours")
    def get(self, tip_id: str) -> dict[str, Any]:
        """A tip, for its fan, its creator or an admin."""
        session = request_session()
        viewer = _viewer()
        return service.tip_view(session, service.get_tip(session, tip_id, viewer), viewer)


@blp.route("/tips/<string:tip_id>/refund")
class TipRefundAction(MethodView):
    @require("creator", "admin")
    @with_tip
    @blp.arguments(schemas.TipRefundCreateSchema)
    @idempotent("tips.refund")
    @blp.response(200, schemas.TipSchema)
    @blp.alt_response(404, description="No such tip, or not yours")
    @blp.alt_response(409, description="Not refundable in its state")
    def post(self, data: dict[str, Any], tip_id: str) -> dict[str, Any]:
        """Refund a tip in full or in part (its creator, or an admin); answers the tip."""
        session = request_session()
        viewer = _viewer()
        tip: Tip = g.tip
        p = principal()
        refund = service.request_refund(session, tip, data.get("amount"), data.get("reason"),
                                        requested_by=p.role)

        def refused(exc: GatewayError) -> None:
            service.refund_failed(session, refund, exc.message)

        call_stripe(
            session,
            lambda gateway: gateway.create_refund(
                payment_intent=tip.payment_intent_id or "",
                amount=refund.amount,
                idempotency_key=idempotency_key("tip_refund", refund.public_id),
                reason="requested_by_customer",
                metadata={"creatorpay_kind": "tip_refund", "tip_id": tip.public_id,
                          "refund_id": refund.public_id},
            ),
            record=lambda answer: service.refund_answered(session, refund, answer),
            on_failure=refused,
        )
        return service.tip_view(session, tip, viewer)


@blp.route("/creators/me/tips")
class CreatorTips(MethodView):
    @require("creator")
    @blp.arguments(schemas.TipListQuerySchema, location="query")
    @blp.response(200, schemas.TipPageSchema)
    @blp.alt_response(404, description="starting_after: no such tip")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The creator's tips, newest first."""
        session = request_session()
        viewer = _viewer()
        p = principal()
        assert p.owner_id is not None
        rows, more = service.list_creator_tips(session, p.owner_id, query["limit"],
                                               query.get("starting_after"))
        return {"data": [service.tip_view(session, t, viewer) for t in rows], "has_more": more}

