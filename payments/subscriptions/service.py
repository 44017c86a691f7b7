"""Subscriptions: tiers, subscribing, changes, refunds, and what Stripe reports about them.

Money reaches the ledger only from Stripe's records: a paid invoice's charge and its balance
transaction (gross and fee), a refund's. Subscription state is Stripe's: each subscription
object we see (our own API answer or an event) is applied only when it is newer than the
state we hold (``stripe_state_at``, Stripe's time of that state); an event from the same
second as the state we hold asks Stripe for the subscription as it is now, so order never
decides. Nothing here talks to Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payments.accounts.models import Creator, Fan
from payments.clock import now_ts
from payments.db import for_update, one_of
from payments.errors import Conflict, InvalidRequest, InvalidTransition, NotFound
from payments.events import expandable_id, stripe_int
from payments.ledger import service as ledger
from payments.money import CURRENCIES, split_fee
from payments.subscriptions.models import (
    ENDED_STATUSES,
    LIVE_STATUSES,
    Subscription,
    SubscriptionInvoice,
    SubscriptionRefund,
    Tier,
    TierPrice,
)

INTERVALS = ("month", "year")
MAX_TRIAL_DAYS = 730
# Invoice statuses in the order they move (void and uncollectible end an open invoice).
INVOICE_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "void": 3, "paid": 3}


@dataclass(frozen=True)
class Viewer:
    role: str
    owner_id: int | None


# ----------------------------------------------------------------------------- tiers


def _check_amount(amount: int, currency: str) -> None:
    minimum = CURRENCIES[currency].min_charge
    if amount < minimum:
        raise InvalidRequest(f"The smallest price in {currency} is {minimum}.",
                             code="amount_too_small", param="amount")


def create_tier(session: Session, creator_id: int, data: dict[str, Any]) -> Tier:
    """Validate and store a tier (the caller then makes its Stripe product and price)."""
    _check_amount(data["amount"], data["currency"])
    tier = Tier(
        creator_id=creator_id, name=data["name"], description=data.get("description"),
        amount=data["amount"], currency=data["currency"], interval=data["interval"],
        trial_days=data.get("trial_days") or None,
        max_subscribers=data.get("max_subscribers"), active=True,
    )
    session.add(tier)
    session.flush()
    return tier


def tier_metadata(tier: Tier) -> dict[str, str]:
    return {"creatorpay_kind": "tier", "tier_id": tier.public_id}


def record_product(session: Session, tier: Tier, product: dict[str, Any]) -> None:
    tier.stripe_product_id = product["id"]
    session.flush()


def record_price(session: Session, tier: Tier, price: dict[str, Any]) -> None:
    """The tier's new current price (new subscribers get it; existing ones keep theirs)."""
    recurring = price.get("recurring") or {}
    tier.stripe_price_id = price["id"]
    tier.amount = stripe_int(price["unit_amount"], "unit_amount")
    tier.updated = now_ts()
    if session.scalar(select(TierPrice.id).where(TierPrice.stripe_price_id == price["id"])) is None:
        session.add(TierPrice(tier_id=tier.id, stripe_price_id=price["id"], amount=tier.amount,
                              currency=price["currency"],
                              interval=recurring.get("interval") or tier.interval))
    session.flush()


def get_tier(session: Session, public_id: str, *, creator_id: int | None = None,
             lock: bool = False, param: str | None = None) -> Tier:
    """The tier (404 when it is not ``creator_id``'s, if given)."""
    stmt = select(Tier).where(Tier.public_id == public_id)
    tier = session.scalar(for_update(session, stmt) if lock else stmt)
    if tier is None or (creator_id is not None and tier.creator_id != creator_id):
        raise NotFound("No such tier.", code="tier_not_found", param=param)
    return tier


def update_tier(session: Session, tier: Tier, data: dict[str, Any]) -> bool:
    """Apply a PATCH; answers whether a new Stripe price is needed (``data['amount']``)."""
    for name in ("name", "description", "max_subscribers"):
        if name in data:
            setattr(tier, name, data[name])
    if "trial_days" in data:
        tier.trial_days = data["trial_days"] or None
    if data.get("active") is False or data.get("archived") is True:
        tier.active = False
    elif data.get("active") is True or data.get("archived") is False:
        tier.active = True
    new_price = "amount" in data and data["amount"] != tier.amount
    if new_price:
        _check_amount(data["amount"], tier.currency)
    tier.updated = now_ts()
    session.flush()
    return new_price


def live_count(session: Session, tier: Tier) -> int:
    return int(session.scalar(
        select(func.count()).select_from(Subscription)
        .where(Subscription.tier_id == tier.id, Subscription.status.in_(LIVE_STATUSES))) or 0)


def tier_view(session: Session, tier: Tier, *, private: bool = False) -> dict[str, Any]:
    creator = session.get(Creator, tier.creator_id)
    assert creator is not None
    body: dict[str, Any] = {
        "id": tier.public_id, "object": "tier", "creator": creator.public_id,
        "name": tier.name, "description": tier.description, "amount": tier.amount,
        "currency": tier.currency, "interval": tier.interval, "trial_days": tier.trial_days,
        "max_subscribers": tier.max_subscribers, "active": tier.active,
        "sold_out": bool(tier.max_subscribers is not None
                         and live_count(session, tier) >= tier.max_subscribers),
        "created": tier.created,
    }
    if private:
        body["subscriber_count"] = live_count(session, tier)
        body["stripe_price"] = tier.stripe_price_id
    return body


def profile_fields(session: Session, creator: Creator) -> dict[str, Any]:
    """The creator's active tiers, for the public profile."""
    tiers = session.scalars(
        select(Tier).where(Tier.creator_id == creator.id, Tier.active.is_(True),
                           Tier.stripe_price_id.is_not(None)).order_by(Tier.amount, Tier.id))
    return {"tiers": [tier_view(session, t) for t in tiers]}


# ----------------------------------------------------------------------------- subscribing


def start_subscription(session: Session, fan_id: int, tier_ref: str) -> Subscription:
    """Hold a seat: the fan's subscription row, awaiting Stripe's.

    The fan's row and the tier's are locked, so two subscribes for the last seat (or two of
    one fan's) are decided one after the other: one fan has one live subscription per
    creator, and a tier never sells more than ``max_subscribers``.
    """
    fan = session.scalar(for_update(session, select(Fan).where(Fan.id == fan_id)))
    assert fan is not None
    tier = get_tier(session, tier_ref, lock=True, param="tier")
    if not tier.active or tier.stripe_price_id is None:
        raise InvalidTransition("This tier is archived.", code="tier_archived", param="tier")
    existing = session.scalar(
        select(Subscription).where(Subscription.fan_id == fan_id,
                                   Subscription.creator_id == tier.creator_id,
                                   Subscription.status.in_(LIVE_STATUSES))
        .order_by(Subscription.id))
    if (existing is not None and existing.tier_id == tier.id
            and existing.stripe_subscription_id is None and existing.status == "incomplete"):
        return existing  # an attempt Stripe never answered: carry on with the same ids
    if existing is not None:
        raise Conflict(f"You already subscribe to this creator ({existing.public_id}).",
                       code="already_subscribed", extra={"subscription": existing.public_id})
    if tier.max_subscribers is not None and live_count(session, tier) >= tier.max_subscribers:
        raise Conflict("This tier is sold out.", code="tier_full", param="tier")
    sub = Subscription(
        creator_id=tier.creator_id, fan_id=fan_id, tier_id=tier.id,
        stripe_price_id=tier.stripe_price_id, amount=tier.amount, currency=tier.currency,
        interval=tier.interval, status="incomplete", stripe_customer_id=fan.stripe_customer_id,
        cancel_at_period_end=False, stripe_state_at=0, revision=0,
    )
    session.add(sub)
    session.flush()
    return sub


def subscription_metadata(sub: Subscription, session: Session) -> dict[str, str]:
    """What we put on the Stripe subscription so every event leads back to ours."""
    creator = session.get(Creator, sub.creator_id)
    tier = session.get(Tier, sub.tier_id)
    assert creator is not None and tier is not None
    return {"creatorpay_kind": "subscription", "subscription_id": sub.public_id,
            "creator_id": creator.public_id, "tier_id": tier.public_id}


def record_customer(session: Session, fan: Fan, sub: Subscription,
                    customer: dict[str, Any]) -> None:
    fan.stripe_customer_id = fan.stripe_customer_id or customer["id"]
    sub.stripe_customer_id = fan.stripe_customer_id
    session.flush()


def record_decline(session: Session, sub: Subscription, code: str, message: str) -> None:
    """The first payment was declined: the subscription never started (no seat held)."""
    sub.failure_code = code
    sub.failure_message = message[:500]
    if sub.status in LIVE_STATUSES:
        sub.status = "incomplete_expired"
        sub.ended_at = now_ts()
    session.flush()


def next_revision(session: Session, sub: Subscription) -> int:
    """A fresh number for the next change we ask Stripe for (its idempotency key)."""
    sub.revision += 1
    session.flush()
    return sub.revision


# ----------------------------------------------------------------------------- Stripe state


def _period(obj: dict[str, Any]) -> tuple[int | None, int | None]:
    items = ((obj.get("items") or {}).get("data")) or []
    item = items[0] if items else {}
    start = item.get("current_period_start", obj.get("current_period_start"))
    end = item.get("current_period_end", obj.get("current_period_end"))
    return start, end


def _first_price(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    items = ((obj.get("items") or {}).get("data")) or []
    if not items:
        return None, None
    return expandable_id(items[0].get("price")), items[0].get("id")


# Seconds within which an event's time and the time of the state we hold cannot be ordered.
CLOCK_SLACK = 2


def apply_subscription(session: Session, sub: Subscription, obj: dict[str, Any],
                       at: int) -> bool:
    """Stripe's subscription state as of ``at``; applied only if newer than what we hold.

    Answers False when ``at`` is the same second as the state we hold (the caller asks
    Stripe for the current state); an older one changes nothing.
    """
    if sub.stripe_subscription_id is None:
        sub.stripe_subscription_id = obj["id"]
    elif sub.stripe_subscription_id != obj["id"]:
        raise ValueError(f"{sub.public_id} is {sub.stripe_subscription_id}, not {obj['id']}")
    if sub.stripe_state_at and at < sub.stripe_state_at - CLOCK_SLACK:
        return True  # plainly older than what we hold
    if sub.stripe_state_at and at <= sub.stripe_state_at + CLOCK_SLACK:
        # Too close to call: our answers are stamped with our clock (following Stripe's,
        # read at most once a second), events with Stripe's. Read the state as it is now.
        return False
    _write_state(session, sub, obj)
    sub.stripe_state_at = at
    return True


def apply_current(session: Session, sub: Subscription, obj: dict[str, Any]) -> None:
    """The subscription as Stripe has it now (a fresh read): always applied."""
    if sub.stripe_subscription_id is None:
        sub.stripe_subscription_id = obj["id"]
    _write_state(session, sub, obj)
    session.flush()


def apply_answer(session: Session, sub: Subscription, obj: dict[str, Any]) -> None:
    """Stripe's answer to our own call: its state is the newest there is, so it is applied,
    and events from before now are stale."""
    apply_current(session, sub, obj)
    sub.stripe_state_at = max(sub.stripe_state_at, now_ts())
    session.flush()


def price_number(session: Session, tier: Tier) -> int:
    """The number of the tier's next Stripe price (part of its idempotency key)."""
    return int(session.scalar(select(func.count()).select_from(TierPrice)
                              .where(TierPrice.tier_id == tier.id)) or 0) + 1


def _write_state(session: Session, sub: Subscription, obj: dict[str, Any]) -> None:
    if sub.status in ENDED_STATUSES:
        # An ended subscription never comes back; later facts (when it ended) still land.
        sub.ended_at = sub.ended_at or obj.get("ended_at")
        sub.canceled_at = sub.canceled_at or obj.get("canceled_at")
        return
    status = obj.get("status")
    if isinstance(status, str) and status:
        sub.status = status
    sub.cancel_at_period_end = bool(obj.get("cancel_at_period_end"))
    start, end = _period(obj)
    if start is not None:
        sub.current_period_start = int(start)
    if end is not None:
        sub.current_period_end = int(end)
    sub.trial_end = obj.get("trial_end")
    sub.canceled_at = obj.get("canceled_at")
    sub.ended_at = obj.get("ended_at")
    sub.stripe_customer_id = expandable_id(obj.get("customer")) or sub.stripe_customer_id
    latest = expandable_id(obj.get("latest_invoice"))
    if latest:
        sub.latest_invoice_id = latest
    price_id, item_id = _first_price(obj)
    if item_id:
        sub.stripe_item_id = item_id
    if price_id and price_id != sub.stripe_price_id:
        price = session.scalar(select(TierPrice).where(TierPrice.stripe_price_id == price_id))
        if price is not None:
            tier = session.get(Tier, price.tier_id)
            if tier is not None and tier.creator_id == sub.creator_id:
                sub.tier_id = tier.id
                sub.stripe_price_id = price_id
                sub.amount = price.amount
                sub.interval = price.interval


def record_client_secret(sub: Subscription, obj: dict[str, Any]) -> None:
    """The first invoice's PaymentIntent secret, for Stripe.js (``default_incomplete``)."""
    invoice = obj.get("latest_invoice")
    pays = ((invoice.get("payments") or {}).get("data") or []) if isinstance(invoice, dict) else []
    for pay in pays:
        intent = (pay.get("payment") or {}).get("payment_intent")
        if isinstance(intent, dict) and intent.get("client_secret"):
            sub.client_secret = intent["client_secret"]


# ----------------------------------------------------------------------------- reading


def find_subscription(session: Session, obj: dict[str, Any], *,
                      lock: bool = True) -> Subscription | None:
    """Ours, by the public id in the metadata, else by Stripe's subscription id."""
    metadata = obj.get("metadata") or {}
    public = metadata.get("subscription_id") if isinstance(metadata, dict) else None
    if public:
        stmt = select(Subscription).where(Subscription.public_id == str(public))
    elif obj.get("id"):
        stmt = select(Subscription).where(Subscription.stripe_subscription_id == obj["id"])
    else:
        return None
    found: Subscription | None = session.scalar(for_update(session, stmt) if lock else stmt)
    return found


def get_subscription(session: Session, public_id: str, viewer: Viewer, *,
                     lock: bool = False) -> Subscription:
    """The subscription, if the viewer is its fan, its creator or an admin; otherwise 404."""
    stmt = select(Subscription).where(Subscription.public_id == public_id)
    sub = session.scalar(for_update(session, stmt) if lock else stmt)
    if sub is None or not (
        viewer.role == "admin"
        or (viewer.role == "creator" and sub.creator_id == viewer.owner_id)
        or (viewer.role == "fan" and sub.fan_id == viewer.owner_id)
    ):
        raise NotFound("No such subscription.", code="subscription_not_found")
    return sub


def _page(session: Session, stmt: Any, owner_filter: Any, limit: int,
          starting_after: str | None) -> tuple[list[Subscription], bool]:
    if starting_after:
        anchor = session.scalar(select(Subscription.id).where(
            Subscription.public_id == starting_after, owner_filter))
        if anchor is None:
            raise NotFound("No such subscription to start after.", param="starting_after")
        stmt = stmt.where(Subscription.id < anchor)
    rows = list(session.scalars(stmt.order_by(Subscription.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def list_subscriptions(session: Session, *, creator_id: int | None = None,
                       fan_id: int | None = None, status: str | None = None, limit: int = 20,
                       starting_after: str | None = None) -> tuple[list[Subscription], bool]:
    owner = (Subscription.creator_id == creator_id if creator_id is not None
             else Subscription.fan_id == fan_id)
    stmt = select(Subscription).where(owner)
    if status:
        stmt = stmt.where(Subscription.status == status)
    return _page(session, stmt, owner, limit, starting_after)


def invoice_view(inv: SubscriptionInvoice) -> dict[str, Any]:
    return {
        "id": inv.stripe_invoice_id, "object": "invoice", "status": inv.status,
        "billing_reason": inv.billing_reason, "currency": inv.currency, "total": inv.total,
        "amount_due": inv.amount_due, "amount_paid": inv.amount_paid,
        "amount_refunded": inv.amount_refunded, "attempt_count": inv.attempt_count,
        "period_start": inv.period_start, "period_end": inv.period_end,
        "created": inv.created, "paid_at": inv.paid_at,
    }


def subscription_view(session: Session, sub: Subscription, viewer: Viewer) -> dict[str, Any]:
    creator = session.get(Creator, sub.creator_id)
    tier = session.get(Tier, sub.tier_id)
    fan = session.get(Fan, sub.fan_id)
    assert creator is not None and tier is not None and fan is not None
    invoices = session.scalars(
        select(SubscriptionInvoice).where(SubscriptionInvoice.subscription_id == sub.id)
        .order_by(SubscriptionInvoice.id.desc()).limit(24)).all()
    body: dict[str, Any] = {
        "id": sub.public_id, "object": "subscription", "creator": creator.public_id,
        "creator_handle": creator.handle, "tier": tier.public_id, "tier_name": tier.name,
        "fan": {"id": fan.public_id, "name": fan.display_name},
        "status": sub.status, "amount": sub.amount, "currency": sub.currency,
        "interval": sub.interval, "cancel_at_period_end": sub.cancel_at_period_end,
        "current_period_start": sub.current_period_start,
        "current_period_end": sub.current_period_end, "trial_end": sub.trial_end,
        "canceled_at": sub.canceled_at, "ended_at": sub.ended_at,
        "failure_code": sub.failure_code, "failure_message": sub.failure_message,
        "latest_invoice": sub.latest_invoice_id,
        "invoices": [invoice_view(i) for i in invoices],
        "created": sub.created,
    }
    if viewer.role == "fan" and sub.status == "incomplete" and sub.client_secret:
        body["client_secret"] = sub.client_secret
    return body


# ----------------------------------------------------------------------------- changes


def check_cancel(sub: Subscription, at_period_end: bool) -> None:
    if sub.status in ENDED_STATUSES:
        raise InvalidTransition(f"The subscription is already {sub.status}.")
    if at_period_end and sub.cancel_at_period_end:
        raise InvalidTransition("The subscription already ends at the period end.")


def check_resume(sub: Subscription) -> None:
    if sub.status in ENDED_STATUSES or not sub.cancel_at_period_end:
        raise InvalidTransition("Only a subscription set to end at the period end resumes.")


def check_change(session: Session, sub: Subscription, tier_ref: str) -> Tier:
    """The tier to move to: the same creator's, active, same currency, a seat free."""
    tier = get_tier(session, tier_ref, lock=True, param="tier")
    if tier.creator_id != sub.creator_id:
        raise NotFound("No such tier.", code="tier_not_found", param="tier")
    if sub.status not in ("active", "trialing", "past_due") or sub.stripe_subscription_id is None:
        raise InvalidTransition(f"A subscription that is {sub.status} cannot change tier.")
    if tier.id == sub.tier_id and tier.stripe_price_id == sub.stripe_price_id:
        raise InvalidTransition("The subscription is on this tier already.")
    if not tier.active or tier.stripe_price_id is None:
        raise InvalidTransition("This tier is archived.", code="tier_archived", param="tier")
    if tier.currency != sub.currency:
        raise InvalidRequest("A subscription cannot change currency.",
                             code="currency_mismatch", param="tier")
    if (tier.id != sub.tier_id and tier.max_subscribers is not None
            and live_count(session, tier) >= tier.max_subscribers):
        raise Conflict("This tier is sold out.", code="tier_full", param="tier")
    return tier


# ----------------------------------------------------------------------------- invoices


def invoice_subscription_ref(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """(our public id, Stripe's subscription id) an invoice belongs to.

    Current API versions put both under ``parent.subscription_details``; older ones have the
    subscription id at the top level (``subscription``).
    """
    parent = obj.get("parent") or {}
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    public = stripe_id = None
    if isinstance(details, dict):
        meta = details.get("metadata") or {}
        if isinstance(meta, dict) and meta.get("creatorpay_kind") == "subscription":
            public = meta.get("subscription_id")
        stripe_id = expandable_id(details.get("subscription"))
    stripe_id = stripe_id or expandable_id(obj.get("subscription"))
    return (str(public) if public else None), stripe_id


def find_invoice_subscription(session: Session, obj: dict[str, Any]) -> Subscription | None:
    public, stripe_id = invoice_subscription_ref(obj)
    if public:
        return find_subscription(session, {"metadata": {"subscription_id": public}})
    if stripe_id:
        return find_subscription(session, {"id": stripe_id})
    return None


def lock_invoices(session: Session, ids: list[str]) -> dict[str, SubscriptionInvoice]:
    """Our copies of these invoices, locked, by Stripe id (one query)."""
    if not ids:
        return {}
    stmt = (select(SubscriptionInvoice)
            .where(one_of(session, SubscriptionInvoice.stripe_invoice_id, sorted(set(ids))))
            .order_by(SubscriptionInvoice.id))
    return {i.stripe_invoice_id: i for i in session.scalars(for_update(session, stmt))}


def record_invoice(session: Session, sub: Subscription, obj: dict[str, Any],
                   known: dict[str, SubscriptionInvoice] | None = None, *,
                   complete: bool = False) -> SubscriptionInvoice:
    """Store or move forward our copy of an invoice (status only advances).

    ``known`` holds the batch's invoices already loaded (and locked); a new one joins it.
    ``complete``: ``known`` was read while ``sub`` was locked, so an invoice of ``sub`` not
    in it does not exist (nobody adds one without that lock) and is not looked for again.
    """
    if known is not None and obj["id"] in known:
        inv: SubscriptionInvoice | None = known[obj["id"]]
    elif known is not None and complete:
        inv = None
    else:
        inv = session.scalar(for_update(session, select(SubscriptionInvoice).where(
            SubscriptionInvoice.stripe_invoice_id == obj["id"])))
    if inv is None:
        inv = SubscriptionInvoice(
            stripe_invoice_id=obj["id"], subscription_id=sub.id, creator_id=sub.creator_id,
            currency=obj.get("currency") or sub.currency, status="draft", amount_refunded=0,
            attempt_count=0, total=0, amount_due=0, amount_paid=0, booked=False,
            created=int(obj.get("created") or now_ts()))
        session.add(inv)
    if known is not None:
        known[obj["id"]] = inv
    status = obj.get("status") or "draft"
    if INVOICE_RANK.get(status, 0) >= INVOICE_RANK.get(inv.status, 0) and inv.status != "paid":
        inv.status = status
    inv.total = stripe_int(obj.get("total") or 0, "total")
    inv.amount_due = stripe_int(obj.get("amount_due") or 0, "amount_due")
    inv.amount_paid = max(inv.amount_paid, stripe_int(obj.get("amount_paid") or 0, "amount_paid"))
    inv.attempt_count = max(inv.attempt_count, int(obj.get("attempt_count") or 0))
    inv.billing_reason = obj.get("billing_reason") or inv.billing_reason
    inv.period_start, inv.period_end = _invoice_period(obj)
    transitions = obj.get("status_transitions") or {}
    if isinstance(transitions, dict) and transitions.get("paid_at"):
        inv.paid_at = int(transitions["paid_at"])
    return inv


def _invoice_period(obj: dict[str, Any]) -> tuple[int | None, int | None]:
    """The billing period the invoice pays for: its subscription lines' (not proration
    lines', which cover the rest of the current period), else the invoice's own."""
    lines = ((obj.get("lines") or {}).get("data")) or []
    for line in lines:
        period = line.get("period") or {}
        parent = line.get("parent") or {}
        details = parent.get("subscription_item_details") if isinstance(parent, dict) else None
        proration = bool((details or {}).get("proration", line.get("proration")))
        if period and not proration:
            return period.get("start"), period.get("end")
    for line in lines:
        period = line.get("period") or {}
        if period:
            return period.get("start"), period.get("end")
    return obj.get("period_start"), obj.get("period_end")


def earning_key(invoice_id: str) -> str:
    return f"invoice:{invoice_id}"


def earning_posted(session: Session, inv: SubscriptionInvoice) -> bool:
    """Whether the invoice's earning is in the ledger: ``booked`` is set in the transaction
    that posts its journals (``invoice_paid``), so it needs no lookup of the journal."""
    return inv.booked


def _check_currency(inv: SubscriptionInvoice, txn: dict[str, Any]) -> None:
    if txn["currency"] != inv.currency:
        raise ValueError(f"balance transaction {txn['id']} settled in {txn['currency']}, "
                         f"invoice {inv.stripe_invoice_id} in {inv.currency}")


def invoice_paid(session: Session, sub: Subscription, inv: SubscriptionInvoice,
                 charge: dict[str, Any], txn: dict[str, Any], fee_rate: Decimal
                 ) -> list[ledger.JournalSpec]:
    """A paid invoice's journals: gross to the creator's pending, Stripe's fee and the
    platform's as their own journals, keyed by the invoice (for ``post_many``)."""
    _check_currency(inv, txn)
    inv.booked = True
    inv.charge_id = inv.charge_id or charge["id"]
    inv.payment_intent_id = inv.payment_intent_id or expandable_id(charge.get("payment_intent"))
    inv.amount_refunded = max(inv.amount_refunded,
                              stripe_int(charge.get("amount_refunded") or 0, "amount_refunded"))
    gross = stripe_int(txn["amount"])
    platform_fee, _ = split_fee(gross, fee_rate)
    return ledger.earning_journals(
        sub.creator_id, inv.currency, gross=gross,
        processor_fee=stripe_int(txn["fee"], "fee"), platform_fee=platform_fee,
        key=earning_key(inv.stripe_invoice_id), kind="subscription",
        source=("invoice", inv.stripe_invoice_id),
        effective_at=stripe_int(txn["created"], "created"),
    )


# ----------------------------------------------------------------------------- refunds


def paid_invoice(session: Session, sub: Subscription, invoice_id: str | None
                 ) -> SubscriptionInvoice:
    stmt = select(SubscriptionInvoice).where(SubscriptionInvoice.subscription_id == sub.id)
    if invoice_id:
        inv = session.scalar(for_update(session, stmt.where(
            SubscriptionInvoice.stripe_invoice_id == invoice_id)))
        if inv is None:
            raise NotFound("No such invoice of this subscription.", code="invoice_not_found",
                           param="invoice")
    else:
        inv = session.scalar(for_update(session, stmt.where(
            SubscriptionInvoice.status == "paid", SubscriptionInvoice.amount_paid > 0)
            .order_by(SubscriptionInvoice.id.desc())))
        if inv is None:
            raise InvalidTransition("The subscription has no paid invoice to refund.")
    return inv


def refundable(session: Session, inv: SubscriptionInvoice) -> int:
    asked = session.scalar(
        select(func.coalesce(func.sum(SubscriptionRefund.amount), 0)).where(
            SubscriptionRefund.invoice_id == inv.id,
            SubscriptionRefund.status.in_(("pending", "succeeded"))))
    return inv.amount_paid - max(int(asked or 0), inv.amount_refunded)


def request_refund(session: Session, inv: SubscriptionInvoice, amount: int | None,
                   reason: str | None, requested_by: str) -> SubscriptionRefund:
    if inv.status != "paid" or inv.amount_paid <= 0 or inv.payment_intent_id is None:
        raise InvalidTransition("Only a paid (and booked) invoice can be refunded.")
    left = refundable(session, inv)
    if left <= 0:
        raise InvalidTransition("The invoice is already fully refunded.")
    amount = left if amount is None else amount
    if amount > left:
        raise InvalidRequest(f"At most {left} can still be refunded.",
                             code="amount_too_large", param="amount")
    refund = SubscriptionRefund(invoice_id=inv.id, amount=amount, reason=reason,
                                status="pending", requested_by=requested_by)
    session.add(refund)
    session.flush()
    return refund


def refund_answered(session: Session, refund: SubscriptionRefund,
                    answer: dict[str, Any]) -> None:
    refund.stripe_refund_id = answer["id"]
    refund.status = answer.get("status") or refund.status
    session.flush()


def refund_failed(session: Session, refund: SubscriptionRefund, message: str) -> None:
    refund.status = "failed"
    refund.reason = (refund.reason or "") + f" [failed: {message[:150]}]"
    session.flush()


def invoice_for_charge(session: Session, obj: dict[str, Any]) -> SubscriptionInvoice | None:
    """The invoice a refund (or dispute) belongs to: by our metadata, charge or intent."""
    metadata = obj.get("metadata") or {}
    if isinstance(metadata, dict) and metadata.get("invoice_id"):
        found = session.scalar(for_update(session, select(SubscriptionInvoice).where(
            SubscriptionInvoice.stripe_invoice_id == str(metadata["invoice_id"]))))
        if found is not None:
            return found
    for column, value in ((SubscriptionInvoice.charge_id, expandable_id(obj.get("charge"))),
                          (SubscriptionInvoice.payment_intent_id,
                           expandable_id(obj.get("payment_intent")))):
        if value:
            found = session.scalar(for_update(session, select(SubscriptionInvoice).where(
                column == value)))
            if found is not None:
                return found
    return None


def _take_from_creator(session: Session, inv: SubscriptionInvoice, amount: int
                       ) -> list[ledger.Leg]:
    """Debit the creator: what is still pending for this invoice first, then available."""
    source = ("invoice", inv.stripe_invoice_id)
    pending = max(0, ledger.pending_for_source(session, inv.creator_id, inv.currency, source))
    from_pending = min(pending, amount)
    legs = []
    if from_pending:
        legs.append(ledger.debit(ledger.creator_account(inv.creator_id, "pending", inv.currency),
                                 from_pending))
    if amount - from_pending:
        legs.append(ledger.debit(
            ledger.creator_account(inv.creator_id, "available", inv.currency),
            amount - from_pending))
    return legs


def refund_settled(session: Session, inv: SubscriptionInvoice, refund: dict[str, Any],
                   txn: dict[str, Any], fee_rate: Decimal) -> None:
    """A refund Stripe has made: the platform gives back its fee share of it, the creator
    the rest (Stripe keeps its processing fee), as for tips."""
    _check_currency(inv, txn)
    row = session.scalar(select(SubscriptionRefund).where(
        SubscriptionRefund.stripe_refund_id == refund["id"]))
    if row is None:
        meta = refund.get("metadata") or {}
        ours = meta.get("refund_id") if isinstance(meta, dict) else None
        row = session.scalar(select(SubscriptionRefund).where(
            SubscriptionRefund.public_id == str(ours))) if ours else None
    if row is None:
        row = SubscriptionRefund(invoice_id=inv.id, stripe_refund_id=refund["id"],
                                 amount=stripe_int(refund["amount"]),
                                 reason=refund.get("reason"), requested_by="stripe",
                                 status=refund.get("status") or "succeeded")
        session.add(row)
    else:
        row.stripe_refund_id = row.stripe_refund_id or refund["id"]
        row.status = refund.get("status") or row.status
    session.flush()
    _sync_refunded(session, inv)
    key = f"subscription_refund:{refund['id']}"
    if ledger.journal_by_key(session, key) is not None:
        return
    refunded = -stripe_int(txn["amount"])
    platform_part, creator_part = split_fee(refunded, fee_rate)
    legs = _take_from_creator(session, inv, creator_part)
    if platform_part:
        legs.append(ledger.debit(ledger.platform_account("platform_revenue", inv.currency),
                                 platform_part))
    legs.append(ledger.credit(ledger.platform_account("stripe_balance", inv.currency), refunded))
    ledger.post(session, key, "refund", legs, source=("invoice", inv.stripe_invoice_id),
                effective_at=stripe_int(txn["created"], "created"))


def _sync_refunded(session: Session, inv: SubscriptionInvoice) -> None:
    total = session.scalar(
        select(func.coalesce(func.sum(SubscriptionRefund.amount), 0)).where(
            SubscriptionRefund.invoice_id == inv.id, SubscriptionRefund.status == "succeeded"))
    inv.amount_refunded = max(inv.amount_refunded, int(total or 0))
    session.flush()



# ----------------------------------------------------------------------------- disputes


def dispute_key(dispute_id: str, txn_id: str) -> str:
    return f"subscription_dispute:{dispute_id}:{txn_id}"


def dispute_changed(session: Session, inv: SubscriptionInvoice, dispute: dict[str, Any]) -> None:
    """A dispute of the invoice's charge: each of its balance transactions posted once, as
    for tips. A withdrawal takes the disputed amount plus Stripe's dispute fee from the
    creator (what is still pending for the invoice first, then available); a reinstatement
    (the dispute won) gives back what Stripe returns, to available."""
    for txn in dispute.get("balance_transactions") or []:
        if not isinstance(txn, dict):
            continue
        _check_currency(inv, txn)
        key = dispute_key(str(dispute["id"]), str(txn["id"]))
        if ledger.journal_by_key(session, key) is not None:
            continue  # posted already; never recompute the split
        net = stripe_int(txn["net"], "net")
        stripe_balance = ledger.platform_account("stripe_balance", inv.currency)
        if net < 0:
            legs = _take_from_creator(session, inv, -net)
            legs.append(ledger.credit(stripe_balance, -net))
        elif net > 0:
            legs = [ledger.debit(stripe_balance, net),
                    ledger.credit(ledger.creator_account(inv.creator_id, "available",
                                                         inv.currency), net)]
        else:
            continue
        ledger.post(session, key, "dispute", legs, source=("invoice", inv.stripe_invoice_id),
                    effective_at=stripe_int(txn["created"], "created"))
