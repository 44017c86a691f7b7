from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK
from payments.ids import new_id

# Stripe's subscription statuses. A subscription is "live" (it holds a seat and is the fan's
# one subscription to the creator) until it ends.
LIVE_STATUSES = ("incomplete", "trialing", "active", "past_due", "unpaid")
ENDED_STATUSES = ("canceled", "incomplete_expired")


class Tier(Base):
    """A creator's membership tier: a Stripe product with one current recurring price."""

    __tablename__ = "tiers"
    __table_args__ = (Index("ix_tiers_creator_id_id", "creator_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: new_id("tier"))
    creator_id: Mapped[int] = mapped_column(ForeignKey("creators.id"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    # The price new subscribers get (minor units); existing ones keep theirs.
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8))  # month | year
    trial_days: Mapped[int | None] = mapped_column(BigInteger)
    max_subscribers: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    stripe_product_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    updated: Mapped[int] = mapped_column(BigInteger, default=now_ts)


class TierPrice(Base):
    """Every Stripe price a tier has had: subscribers keep theirs when the tier's changes."""

    __tablename__ = "tier_prices"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tier_id: Mapped[int] = mapped_column(ForeignKey("tiers.id"), index=True)
    stripe_price_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_creator_id_id", "creator_id", "id"),
        Index("ix_subscriptions_fan_id_id", "fan_id", "id"),
        Index("ix_subscriptions_tier_id_status", "tier_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_id("subscription"))
    creator_id: Mapped[int] = mapped_column(ForeignKey("creators.id"))
    fan_id: Mapped[int] = mapped_column(ForeignKey("fans.id"))
    tier_id: Mapped[int] = mapped_column(ForeignKey("tiers.id"))
    # The Stripe price billed now, and what it costs (the tier's may have changed since).
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    stripe_item_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="incomplete")
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    current_period_start: Mapped[int | None] = mapped_column(BigInteger)
    current_period_end: Mapped[int | None] = mapped_column(BigInteger)
    trial_end: Mapped[int | None] = mapped_column(BigInteger)
    canceled_at: Mapped[int | None] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)
    latest_invoice_id: Mapped[str | None] = mapped_column(String(255))
    client_secret: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    # The Stripe time (event ``created``) of the state applied last: older events are stale.
    stripe_state_at: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bumped for every change we ask Stripe for (each needs its own idempotency key).
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)


class SubscriptionInvoice(Base):
    """A Stripe invoice of one of our subscriptions; a paid one is the creator's earning."""

    __tablename__ = "subscription_invoices"
    __table_args__ = (
        Index("ix_subscription_invoices_subscription_id_id", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    stripe_invoice_id: Mapped[str] = mapped_column(String(255), unique=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    creator_id: Mapped[int] = mapped_column(ForeignKey("creators.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    billing_reason: Mapped[str | None] = mapped_column(String(40))
    attempt_count: Mapped[int] = mapped_column(BigInteger, default=0)
    period_start: Mapped[int | None] = mapped_column(BigInteger)
    period_end: Mapped[int | None] = mapped_column(BigInteger)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    charge_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The largest refunded total seen (never decreases).
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # Its earning's journals are posted (set in the transaction that posts them).
    booked: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    paid_at: Mapped[int | None] = mapped_column(BigInteger)


class SubscriptionRefund(Base):
    __tablename__ = "subscription_refunds"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_id("refund"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("subscription_invoices.id"), index=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(200))
    # pending | succeeded | failed | canceled, as Stripe spells them.
    status: Mapped[str] = mapped_column(String(20), default="pending")
    requested_by: Mapped[str | None] = mapped_column(String(50))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
