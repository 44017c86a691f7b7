from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from payments.accounts.models import Brand, Creator
from payments.auth import principal, require
from payments.db import request_session
from payments.deals import schemas, service
from payments.deals.models import Deal, DealRefund
from payments.errors import InvalidTransition, PaymentsError
from payments.gateway import CardError, GatewayError, idempotency_key
from payments.idempotency import idempotent
from payments.web import app_config, call_stripe

blp = Blueprint("deals", __name__, url_prefix="/v1",
                description="Sponsored-post deals: brand money in escrow, released per milestone")

F = TypeVar("F", bound=Callable[..., Any])


def _actor() -> service.Actor:
    p = principal()
    session = request_session()
    public_id: str | None = None
    if p.role == "brand" and p.owner_id is not None:
        brand = session.get(Brand, p.owner_id)
        public_id = brand.public_id if brand else None
    elif p.role == "creator" and p.owner_id is not None:
        creator = session.get(Creator, p.owner_id)
        public_id = creator.public_id if creator else None
    elif p.role == "admin":
        public_id = f"admin_key:{p.key_id}"
    return service.Actor(p.role, p.owner_id, public_id)


def with_deal(fn: F) -> F:
    """Load the deal (and milestone) in the path, 404 unless the principal's, before the body."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = request_session()
        g.deal = service.get_deal(session, kwargs["deal_id"], _actor())
        if "milestone_id" in kwargs:
            g.milestone = service.get_milestone(session, g.deal, kwargs["milestone_id"])
        return fn(*args, **kwargs)

    return cast(F, wrapper)


def _answer(deal: Deal) -> dict[str, Any]:
    return service.deal_view(request_session(), deal, _actor())


def _refund(deal: Deal, refund: DealRefund) -> None:
    """Ask Stripe for an escrow refund (the row is committed first); record its answer."""
    session = request_session()

    def refused(exc: GatewayError) -> None:
        service.refund_refused(session, refund, exc.message)

    call_stripe(
        session,
        lambda gateway: gateway.create_refund(
            payment_intent=deal.payment_intent_id or "", amount=refund.amount,
            idempotency_key=idempotency_key("deal_refund", refund.public_id),
            reason="requested_by_customer", metadata=service.refund_metadata(deal, refund)),
        record=lambda answer: service.refund_settled(session, refund, answer),
        on_failure=refused,
    )


@blp.route("/deals")
class Deals(MethodView):
    @require("brand")
    @blp.arguments(schemas.DealCreateSchema)
    @blp.response(201, schemas.DealSchema)
    @blp.alt_response(404, description="Unknown creator (param: creator)")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Propose a deal to a creator (by handle or id); the creator accepts or declines."""
        session = request_session()
        actor = _actor()
        assert actor.owner_id is not None
        config = app_config()
        deal = service.create_deal(session, data, brand_id=actor.owner_id,
                                   fee_bearer=config.deal_fee_bearer,
                                   fee_rate=config.platform_fee_rate)
        session.commit()
        return _answer(deal)

    @require("brand", "creator")
    @blp.arguments(schemas.DealListQuerySchema, location="query")
    @blp.response(200, schemas.DealPageSchema)
    @blp.alt_response(404, description="starting_after: no such deal")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The brand's or the creator's deals, newest first; ``status`` filters."""
        session = request_session()
        actor = _actor()
        rows, more = service.list_deals(session, actor, limit=query["limit"],
                                        starting_after=query.get("starting_after"),
                                        status=query.get("status"))
        return {"data": [service.deal_view(session, d, actor) for d in rows], "has_more": more}


@blp.route("/deals/<string:deal_id>")
class DealDetail(MethodView):
    @require("brand", "creator", "admin")
    @with_deal
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(404, description="No such deal, or not yours")
    def get(self, deal_id: str) -> dict[str, Any]:
        """A deal with its milestones, escrow figures and history."""
        return _answer(g.deal)


@blp.route("/deals/<string:deal_id>/accept")
class DealAccept(MethodView):
    @require("creator")
    @with_deal
    @blp.arguments(schemas.DealReasonSchema)
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(404, description="No such deal, or not yours")
    @blp.alt_response(409, description="Not proposed (invalid_transition)")
    def post(self, data: dict[str, Any], deal_id: str) -> dict[str, Any]:
        """The creator accepts the deal; its terms are frozen from now on."""
        deal = service.accept(request_session(), g.deal, _actor())
        request_session().commit()
        return _answer(deal)


@blp.route("/deals/<string:deal_id>/decline")
class DealDecline(MethodView):
    @require("creator")
    @with_deal
    @blp.arguments(schemas.DealReasonSchema)
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(404, description="No such deal, or not yours")
    @blp.alt_response(409, description="Not proposed (invalid_transition)")
    def post(self, data: dict[str, Any], deal_id: str) -> dict[str, Any]:
        """The creator declines the deal."""
        deal = service.decline(request_session(), g.deal, _actor(), data.get("reason"))
        request_session().commit()
        return _answer(deal)


@blp.route("/deals/<string:deal_id>/fund")
class DealFund(MethodView):
    @require("brand")
    @with_deal
    @blp.arguments(schemas.DealFundSchema)
    @idempotent("deals.fund")
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(402, description="Card declined; nothing funded")
    @blp.alt_response(404, description="No such deal, or not yours")
    @blp.alt_response(409, description="Not awaiting funding (invalid_transition)")
    def post(self, data: dict[str, Any], deal_id: str) -> dict[str, Any]:
        """The brand pays the sum of the milestones into escrow with one PaymentIntent.

        With ``payment_method`` it is confirmed now; otherwise the answer carries
        ``client_secret``. The deal is ``funded`` once Stripe's events say the money arrived.
        """
        session = request_session()
        actor = _actor()
        deal = service.start_funding(session, g.deal, actor)
        pm = data.get("payment_method")
        brand = session.get(Brand, deal.brand_id)
        assert brand is not None

        def declined(exc: GatewayError) -> dict[str, Any] | None:
            if not isinstance(exc, CardError):
                return None
            if exc.payment_intent:
                service.apply_payment_intent(session, deal, exc.payment_intent)
            service.record_decline(session, deal, exc.decline_code or exc.code or "card_declined",
                                   exc.message)
            return {"deal": deal.public_id}

        if deal.payment_intent_id is None:
            call_stripe(
                session,
                lambda gateway: gateway.create_payment_intent(
                    amount=deal.amount, currency=deal.currency,
                    metadata=service.payment_metadata(deal),
                    idempotency_key=idempotency_key("deal", deal.public_id),
                    payment_method=pm, confirm=True if pm else None,
                    receipt_email=brand.email, description=f"Deal: {deal.title}"[:200]),
                record=lambda intent: service.apply_payment_intent(session, deal, intent),
                on_failure=declined,
            )
        elif pm:
            intent_id = deal.payment_intent_id
            attempt = deal.funding_attempts
            call_stripe(
                session,
                lambda gateway: gateway.confirm_payment_intent(
                    intent_id, payment_method=pm,
                    idempotency_key=idempotency_key("deal", deal.public_id, "confirm", attempt)),
                record=lambda intent: service.apply_payment_intent(session, deal, intent),
                on_failure=declined,
            )
        else:
            session.commit()
        return _answer(deal)


@blp.route("/deals/<string:deal_id>/milestones/<string:milestone_id>/submit")
class MilestoneSubmit(MethodView):
    @require("creator")
    @with_deal
    @blp.arguments(schemas.MilestoneSubmitSchema)
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(404, description="No such deal or milestone, or not yours")
    @blp.alt_response(409, description="Not submittable now (invalid_transition)")
    def post(self, data: dict[str, Any], deal_id: str, milestone_id: str) -> dict[str, Any]:
        """The creator submits proof of a milestone's work (a URL, a note)."""
        session = request_session()
        deal = service.submit(session, g.deal, g.milestone, _actor(), data["proof_url"],
                              data.get("note"))
        session.commit()
        return _answer(deal)


@blp.route("/deals/<string:deal_id>/milestones/<string:milestone_id>/request_changes")
class MilestoneRequestChanges(MethodView):
    @require("brand")
    @with_deal
    @blp.arguments(schemas.MilestoneChangesSchema)
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(404, description="No such deal or milestone, or not yours")
    @blp.alt_response(409, description="Not submitted (invalid_transition)")
    def post(self, data: dict[str, Any], deal_id: str, milestone_id: str) -> dict[str, Any]:
        """The brand asks for changes to a submitted milestone (the revision count grows)."""
        session = request_session()
        deal = service.request_changes(session, g.deal, g.milestone, _actor(), data["note"])
        session.commit()
        return _answer(deal)


@blp.route("/deals/<string:deal_id>/milestones/<string:milestone_id>/approve")
class MilestoneApprove(MethodView):
    @require("brand")
    @with_deal
    @blp.arguments(schemas.DealReasonSchema)
    @idempotent("deals.approve")
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(404, description="No such deal or milestone, or not yours")
    @blp.alt_response(409, description="Not submitted, or the deal not funded")
    def post(self, data: dict[str, Any], deal_id: str, milestone_id: str) -> dict[str, Any]:
        """The brand approves: the milestone's escrow goes to the creator, less the fees."""
        session = request_session()
        deal = service.approve(session, g.deal, g.milestone, _actor())
        session.commit()
        return _answer(deal)


@blp.route("/deals/<string:deal_id>/cancel")
class DealCancel(MethodView):
    @require("brand", "creator")
    @with_deal
    @blp.arguments(schemas.DealReasonSchema)
    @idempotent("deals.cancel")
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(404, description="No such deal, or not yours")
    @blp.alt_response(409, description="Not cancelable in its state")
    def post(self, data: dict[str, Any], deal_id: str) -> dict[str, Any]:
        """Cancel: free before funding; after, the unreleased escrow is refunded to the brand."""
        session = request_session()
        actor = _actor()
        reason = data.get("reason")
        plan = service.cancel(session, g.deal, actor, reason)
        deal = plan.deal
        if plan.cancel_intent:
            intent_id = deal.payment_intent_id or ""
            try:
                call_stripe(
                    session,
                    lambda gateway: gateway.cancel_payment_intent(
                        intent_id, idempotency_key=idempotency_key("deal", deal.public_id,
                                                                   "cancel"),
                        cancellation_reason="abandoned"),
                    record=lambda intent: service.intent_canceled(session, deal, actor, reason,
                                                                  intent),
                )
            except PaymentsError as exc:
                if exc.status_code != 400:
                    raise
                raise InvalidTransition(f"The payment cannot be canceled: {exc.message}",
                                        code="invalid_transition") from None
            return _answer(deal)
        session.commit()
        if plan.refund is not None:
            _refund(deal, plan.refund)
        return _answer(deal)


@blp.route("/deals/<string:deal_id>/dispute")
class DealDispute(MethodView):
    @require("brand", "creator")
    @with_deal
    @blp.arguments(schemas.DealReasonSchema)
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(404, description="No such deal, or not yours")
    @blp.alt_response(409, description="Not funded (invalid_transition)")
    def post(self, data: dict[str, Any], deal_id: str) -> dict[str, Any]:
        """Either party disputes: the unreleased escrow is frozen until an admin resolves."""
        session = request_session()
        deal = service.open_dispute(session, g.deal, _actor(), data.get("reason"))
        session.commit()
        return _answer(deal)


@blp.route("/admin/deals/<string:deal_id>/resolve")
class DealResolve(MethodView):
    @require("admin")
    @with_deal
    @blp.arguments(schemas.DealResolveSchema)
    @idempotent("deals.resolve")
    @blp.response(200, schemas.DealSchema)
    @blp.alt_response(404, description="No such deal")
    @blp.alt_response(409, description="Not disputed (invalid_transition)")
    def post(self, data: dict[str, Any], deal_id: str) -> dict[str, Any]:
        """Split the frozen escrow: ``creator_amount + brand_refund_amount`` must equal it."""
        session = request_session()
        deal, refund = service.resolve(session, g.deal, _actor(), data["creator_amount"],
                                       data["brand_refund_amount"])
        session.commit()
        if refund is not None:
            _refund(deal, refund)
        return _answer(deal)
