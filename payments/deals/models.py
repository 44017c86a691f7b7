"""Deals, their milestones, their refunds and the history of their transitions."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK
from payments.ids import new_id

DEAL_STATUSES = ("proposed", "accepted", "declined", "funding", "funded", "completed",
                 "canceled", "disputed", "resolved")
MILESTONE_STATUSES = ("pending", "submitted", "changes_requested", "released", "canceled",
                      "resolved")
PLATFORMS = ("instagram", "tiktok", "youtube", "x", "facebook", "blog", "offline")
# Who bears Stripe's processing fee on the funding payment (frozen on the deal at creation).
FEE_BEARERS = ("platform", "creator")


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_brand_id_id", "brand_id", "id"),
        Index("ix_deals_creator_id_id", "creator_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True,
                                           default=lambda: new_id("deal"))
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    creator_id: Mapped[int] = mapped_column(ForeignKey("creators.id"))
    title: Mapped[str] = mapped_column(String(200))
    brief: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    # The sum of the milestones: what the brand pays into escrow.
    amount: Mapped[int] = mapped_column(BigInteger)
    review_days: Mapped[int] = mapped_column(Integer, default=7)
    status: Mapped[str] = mapped_column(String(20), default="proposed")
    # Frozen at creation: the platform fee rate on releases and who bears Stripe's fee.
    platform_fee_rate: Mapped[str] = mapped_column(String(20))
    fee_bearer: Mapped[str] = mapped_column(String(10))
    # Funding: one PaymentIntent for the whole deal.
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    charge_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    client_secret: Mapped[str | None] = mapped_column(String(255))
    payment_status: Mapped[str | None] = mapped_column(String(30))
    next_action: Mapped[str | None] = mapped_column(String(50))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    funding_attempts: Mapped[int] = mapped_column(Integer, default=0)
    processor_fee: Mapped[int | None] = mapped_column(BigInteger)
    # Escrow figures, moved in the same transaction as the journals that move the ledger's
    # deal_escrow balance for this deal (tests hold them to the ledger).
    escrow_funded: Mapped[int] = mapped_column(BigInteger, default=0)
    escrow_released: Mapped[int] = mapped_column(BigInteger, default=0)
    escrow_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # A dispute: opened by a party (brand | creator) or a chargeback on the funding payment.
    dispute_opened_by: Mapped[str | None] = mapped_column(String(20))
    dispute_reason: Mapped[str | None] = mapped_column(String(500))
    frozen_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    stripe_dispute_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_dispute_status: Mapped[str | None] = mapped_column(String(40))
    stripe_dispute_amount: Mapped[int | None] = mapped_column(BigInteger)
    resolution_creator_amount: Mapped[int | None] = mapped_column(BigInteger)
    resolution_brand_refund_amount: Mapped[int | None] = mapped_column(BigInteger)
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    accepted_at: Mapped[int | None] = mapped_column(BigInteger)
    funded_at: Mapped[int | None] = mapped_column(BigInteger)
    closed_at: Mapped[int | None] = mapped_column(BigInteger)


class Milestone(Base):
    __tablename__ = "deal_milestones"
    __table_args__ = (Index("ix_deal_milestones_due", "status", "submitted_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True,
                                           default=lambda: new_id("milestone"))
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(20))
    deliverable: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    status: Mapped[str] = mapped_column(String(20), default="pending")
    proof_url: Mapped[str | None] = mapped_column(String(2000))
    note: Mapped[str | None] = mapped_column(Text)
    change_note: Mapped[str | None] = mapped_column(Text)
    revision_count: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[int | None] = mapped_column(BigInteger)
    released_at: Mapped[int | None] = mapped_column(BigInteger)
    released_by: Mapped[str | None] = mapped_column(String(20))  # brand | auto
    # Set at funding when the creator bears Stripe's fee: this milestone's share of it.
    processor_fee_share: Mapped[int] = mapped_column(BigInteger, default=0)
    platform_fee: Mapped[int | None] = mapped_column(BigInteger)
    creator_amount: Mapped[int | None] = mapped_column(BigInteger)


class DealRefund(Base):
    """Escrow going back to the brand through Stripe (cancellation, dispute resolution)."""

    __tablename__ = "deal_refunds"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True,
                                           default=lambda: new_id("refund"))
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(20))  # cancel | resolve
    # pending (asked, no answer yet) | succeeded | failed, as Stripe spells them.
    status: Mapped[str] = mapped_column(String(20), default="pending")
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)


class DealTransition(Base):
    """One line of a deal's history: who moved what, from which status to which, and why."""

    __tablename__ = "deal_transitions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    milestone_id: Mapped[int | None] = mapped_column(ForeignKey("deal_milestones.id"))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    actor_role: Mapped[str] = mapped_column(String(20))  # brand | creator | admin | stripe | system
    actor_id: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
