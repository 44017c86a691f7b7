from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from payments.accounts.models import Fan
from payments.auth import current_principal, principal, require
from payments.db import request_session
from payments.gateway import CardError, GatewayError, idempotency_key
from payments.idempotency import idempotent
from payments.subscriptions import schemas, service
from payments.subscriptions.models import Subscription, Tier
from payments.web import call_stripe

blp = Blueprint("subscriptions", __name__, url_prefix="/v1",
                description="Membership tiers and fans' subscriptions")

F = TypeVar("F", bound=Callable[..., Any])


def _viewer() -> service.Viewer:
    p = current_principal(optional=True)
    return service.Viewer("guest", None) if p is None else service.Viewer(p.role, p.owner_id)


def _owner() -> int:
    p = principal()
    assert p.owner_id is not None
    return p.owner_id


def with_tier(fn: F) -> F:
    """Load the creator's own tier in the path (404 otherwise) before the body is read."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.tier = service.get_tier(request_session(), kwargs["tier_id"], creator_id=_owner(),
                                  lock=True)
        return fn(*args, **kwargs)

    return cast(F, wrapper)


def with_subscription(fn: F) -> F:
    """Load the subscription in the path (404 unless it is the principal's) first."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.subscription = service.get_subscription(request_session(), kwargs["sub_id"],
                                                  _viewer(), lock=True)
        return fn(*args, **kwargs)

    return cast(F, wrapper)


def _new_price(tier: Tier) -> None:
    """Give the tier a new Stripe price at ``tier.amount`` (for new subscribers)."""
    session = request_session()
    number = service.price_number(session, tier)
    product = tier.stripe_product_id
    assert product is not None
    call_stripe(
        session,
        lambda gw: gw.create_price(
            product=product, unit_amount=tier.amount, currency=tier.currency,
            interval="year" if tier.interval == "year" else "month",
            idempotency_key=idempotency_key("tier", tier.public_id, "price", number),
            metadata=service.tier_metadata(tier)),
        record=lambda price: service.record_price(session, tier, price),
    )


@blp.route("/tiers")
class Tiers(MethodView):
    @require("creator")
    @blp.arguments(schemas.TierCreateSchema)
    @blp.response(201, schemas.TierSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a membership tier: a Stripe product with a recurring price."""
        session = request_session()
        tier = service.create_tier(session, _owner(), data)
        call_stripe(
            session,
            lambda gw: gw.create_product(
                name=tier.name, description=tier.description,
                idempotency_key=idempotency_key("tier", tier.public_id, "product"),
                metadata=service.tier_metadata(tier)),
            record=lambda product: service.record_product(session, tier, product),
        )
        _new_price(tier)
        return service.tier_view(session, tier, private=True)


@blp.route("/creators/me/tiers")
class CreatorTiers(MethodView):
    @require("creator")
    @blp.response(200, schemas.TierSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """The creator's tiers, archived ones included."""
        session = request_session()
        return [service.tier_view(session, t, private=True)
                for t in session.query(Tier).filter(Tier.creator_id == _owner())
                .order_by(Tier.id.desc())]


@blp.route("/tiers/<string:tier_id>")
class TierDetail(MethodView):
    @blp.response(200, schemas.TierSchema)
    @blp.alt_response(404, description="No such tier")
    def get(self, tier_id: str) -> dict[str, Any]:
        """A tier, as the public profile shows it."""
        session = request_session()
        return service.tier_view(session, service.get_tier(session, tier_id))

    @require("creator")
    @with_tier
    @blp.arguments(schemas.TierUpdateSchema)
    @blp.response(200, schemas.TierSchema)
    @blp.alt_response(404, description="No such tier, or not yours")
    def patch(self, data: dict[str, Any], tier_id: str) -> dict[str, Any]:
        """Rename, describe, archive or reprice a tier; a new price is a new Stripe price
        for new subscribers (existing ones keep theirs)."""
        session = request_session()
        tier: Tier = g.tier
        old_price = tier.stripe_price_id
        new_price = service.update_tier(session, tier, data)
        if tier.stripe_product_id and {"name", "description", "active", "archived"} & set(data):
            product = tier.stripe_product_id
            call_stripe(session, lambda gw: gw.update_product(
                product, name=tier.name, description=tier.description or None,
                active=tier.active))
        if new_price:
            tier.amount = data["amount"]
            _new_price(tier)
            if old_price:
                call_stripe(session, lambda gw: gw.update_price(old_price, active=False))
        session.commit()
        return service.tier_view(session, tier, private=True)


@blp.route("/subscriptions")
class Subscriptions(MethodView):
    @require("fan")
    @blp.arguments(schemas.SubscriptionCreateSchema)
    @idempotent("subscriptions.create")
    @blp.response(201, schemas.SubscriptionSchema)
    @blp.alt_response(402, description="Card declined; no subscription")
    @blp.alt_response(404, description="Unknown tier (param: tier)")
    @blp.alt_response(409, description="Already subscribed to the creator, or tier_full")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Subscribe to a tier. With ``payment_method`` the first invoice is paid now;
        otherwise the answer carries ``client_secret`` for Stripe.js."""
        session = request_session()
        viewer = _viewer()
        sub = service.start_subscription(session, _owner(), data["tier"])
        fan = session.get(Fan, sub.fan_id)
        tier = session.get(Tier, sub.tier_id)
        assert fan is not None and tier is not None

        def declined(exc: GatewayError) -> dict[str, Any] | None:
            if isinstance(exc, CardError):
                service.record_decline(session, sub, exc.decline_code or exc.code
                                       or "card_declined", exc.message)
            else:
                service.record_decline(session, sub, exc.code or "stripe_error", exc.message)
            return {"subscription": sub.public_id}

        if fan.stripe_customer_id is None:
            call_stripe(
                session,
                lambda gw: gw.create_customer(
                    idempotency_key=idempotency_key("fan", fan.public_id, "customer"),
                    email=fan.email, name=fan.display_name,
                    metadata={"creatorpay_kind": "fan", "fan_id": fan.public_id}),
                record=lambda customer: service.record_customer(session, fan, sub, customer),
            )
        customer = fan.stripe_customer_id
        assert customer is not None
        sub.stripe_customer_id = customer
        pm = data.get("payment_method")
        pm_id: str | None = None
        if pm:
            attached = call_stripe(
                session,
                lambda gw: gw.attach_payment_method(
                    pm, customer=customer,
                    idempotency_key=idempotency_key("subscription", sub.public_id, "attach")),
                on_failure=declined,
            )
            pm_id = str(attached["id"])
        metadata = service.subscription_metadata(sub, session)
        price = sub.stripe_price_id
        assert price is not None
        call_stripe(
            session,
            lambda gw: gw.create_subscription(
                customer=customer, price=price,
                idempotency_key=idempotency_key("subscription", sub.public_id),
                metadata=metadata, trial_period_days=tier.trial_days,
                default_payment_method=pm_id,
                payment_behavior="error_if_incomplete" if pm_id else "default_incomplete",
                off_session=True if pm_id else None,
                expand=None if pm_id else ["latest_invoice.payments.data.payment.payment_intent"]),
            record=lambda answer: _record_created(sub, answer),
            on_failure=declined,
        )
        return service.subscription_view(session, sub, viewer)

    @require("fan")
    @blp.arguments(schemas.SubscriptionListQuerySchema, location="query")
    @blp.response(200, schemas.SubscriptionPageSchema)
    @blp.alt_response(404, description="starting_after: no such subscription")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The fan's own subscriptions, newest first."""
        return _page(query, fan_id=_owner())


def _record_created(sub: Subscription, answer: dict[str, Any]) -> None:
    session = request_session()
    service.record_client_secret(sub, answer)
    service.apply_answer(session, sub, answer)


def _page(query: dict[str, Any], **owner: int) -> dict[str, Any]:
    session = request_session()
    viewer = _viewer()
    rows, more = service.list_subscriptions(
        session, status=query.get("status"), limit=query["limit"],
        starting_after=query.get("starting_after"), **owner)
    return {"data": [service.subscription_view(session, s, viewer) for s in rows],
            "has_more": more}


@blp.route("/subscriptions/<string:sub_id>")
class SubscriptionDetail(MethodView):
    @require("fan", "creator", "admin")
    @blp.response(200, schemas.SubscriptionSchema)
    @blp.alt_response(404, description="No such subscription, or not yours")
    def get(self, sub_id: str) -> dict[str, Any]:
        """A subscription, for its fan, its creator or an admin."""
        session = request_session()
        viewer = _viewer()
        return service.subscription_view(
            session, service.get_subscription(session, sub_id, viewer), viewer)


def _update(sub: Subscription, call: Callable[[Any, str], dict[str, Any]]) -> dict[str, Any]:
    """Ask Stripe for a change of ``sub`` (with a key of its own) and apply the answer."""
    session = request_session()
    rev = service.next_revision(session, sub)
    key = idempotency_key("subscription", sub.public_id, "update", rev)
    call_stripe(session, lambda gw: call(gw, key),
                record=lambda answer: service.apply_answer(session, sub, answer))
    return service.subscription_view(session, sub, _viewer())


@blp.route("/subscriptions/<string:sub_id>/cancel")
class CancelAction(MethodView):
    @require("fan")
    @with_subscription
    @blp.arguments(schemas.CancelSchema)
    @idempotent("subscriptions.cancel")
    @blp.response(200, schemas.SubscriptionSchema)
    @blp.alt_response(404, description="No such subscription, or not yours")
    @blp.alt_response(409, description="Already ended, or already ending")
    def post(self, data: dict[str, Any], sub_id: str) -> dict[str, Any]:
        """Cancel at the period end (the default: access until then) or now."""
        session = request_session()
        sub: Subscription = g.subscription
        at_period_end = bool(data["at_period_end"])
        service.check_cancel(sub, at_period_end)
        stripe_id = sub.stripe_subscription_id
        if stripe_id is None:  # Stripe never made it
            service.record_decline(session, sub, "canceled", "Canceled before it started.")
            session.commit()
            return service.subscription_view(session, sub, _viewer())
        if at_period_end:
            return _update(sub, lambda gw, key: gw.update_subscription(
                stripe_id, idempotency_key=key, cancel_at_period_end=True))
        return _update(sub, lambda gw, key: gw.cancel_subscription(stripe_id,
                                                                   idempotency_key=key))


@blp.route("/subscriptions/<string:sub_id>/resume")
class ResumeAction(MethodView):
    @require("fan")
    @with_subscription
    @blp.arguments(schemas.ResumeSchema)
    @idempotent("subscriptions.resume")
    @blp.response(200, schemas.SubscriptionSchema)
    @blp.alt_response(404, description="No such subscription, or not yours")
    @blp.alt_response(409, description="Not set to end at the period end")
    def post(self, data: dict[str, Any], sub_id: str) -> dict[str, Any]:
        """Undo a cancellation at the period end, before the period ends."""
        sub: Subscription = g.subscription
        service.check_resume(sub)
        stripe_id = sub.stripe_subscription_id
        assert stripe_id is not None
        return _update(sub, lambda gw, key: gw.update_subscription(
            stripe_id, idempotency_key=key, cancel_at_period_end=False))


@blp.route("/subscriptions/<string:sub_id>/change")
class ChangeAction(MethodView):
    @require("fan")
    @with_subscription
    @blp.arguments(schemas.ChangeSchema)
    @idempotent("subscriptions.change")
    @blp.response(200, schemas.SubscriptionSchema)
    @blp.alt_response(404, description="No such subscription or tier (param: tier)")
    @blp.alt_response(409, description="Not changeable in its state, or tier_full")
    def post(self, data: dict[str, Any], sub_id: str) -> dict[str, Any]:
        """Move to another of the creator's tiers now; the difference for the rest of the
        period is prorated and invoiced at once (a credit lands on the next invoice)."""
        session = request_session()
        sub: Subscription = g.subscription
        tier = service.check_change(session, sub, data["tier"])
        stripe_id, item = sub.stripe_subscription_id, sub.stripe_item_id
        price = tier.stripe_price_id
        assert stripe_id is not None and price is not None
        return _update(sub, lambda gw, key: gw.update_subscription(
            stripe_id, idempotency_key=key, price=price, item_id=item,
            proration_behavior="always_invoice"))


@blp.route("/subscriptions/<string:sub_id>/refund")
class RefundAction(MethodView):
    @require("creator", "admin")
    @with_subscription
    @blp.arguments(schemas.RefundCreateSchema)
    @idempotent("subscriptions.refund")
    @blp.response(200, schemas.SubscriptionSchema)
    @blp.alt_response(404, description="No such subscription or invoice (param: invoice)")
    @blp.alt_response(409, description="Nothing paid to refund")
    def post(self, data: dict[str, Any], sub_id: str) -> dict[str, Any]:
        """Refund one of the subscription's paid invoices (the latest by default), in full or
        in part; its creator or an admin. Answers the subscription."""
        session = request_session()
        sub: Subscription = g.subscription
        inv = service.paid_invoice(session, sub, data.get("invoice"))
        refund = service.request_refund(session, inv, data.get("amount"), data.get("reason"),
                                        requested_by=principal().role)
        intent = inv.payment_intent_id
        assert intent is not None

        def refused(exc: GatewayError) -> None:
            service.refund_failed(session, refund, exc.message)

        call_stripe(
            session,
            lambda gw: gw.create_refund(
                payment_intent=intent, amount=refund.amount,
                idempotency_key=idempotency_key("subscription_refund", refund.public_id),
                reason="requested_by_customer",
                metadata={"creatorpay_kind": "subscription_refund",
                          "subscription_id": sub.public_id, "invoice_id": inv.stripe_invoice_id,
                          "refund_id": refund.public_id}),
            record=lambda answer: service.refund_answered(session, refund, answer),
            on_failure=refused,
        )
        return service.subscription_view(session, sub, _viewer())


@blp.route("/creators/me/subscribers")
class Subscribers(MethodView):
    @require("creator")
    @blp.arguments(schemas.SubscriptionListQuerySchema, location="query")
    @blp.response(200, schemas.SubscriptionPageSchema)
    @blp.alt_response(404, description="starting_after: no such subscription")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The creator's subscribers (status, tier, renewal date), newest first."""
        return _page(query, creator_id=_owner())
