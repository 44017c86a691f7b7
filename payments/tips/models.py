from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK
from payments.ids import new_id

# How far a payment has got; it only ever moves forward (see service.PAYMENT_RANK).
PAYMENT_STATUSES = ("requires_payment", "failed", "processing", "succeeded")


class Tip(Base):
    __tablename__ = "tips"
    __table_args__ = (
        Index("ix_tips_creator_id_id", "creator_id", "id"),
        # Velocity rules count a fan's, a guest's and a card's recent tips.
        Index("ix_tips_fan_id_created", "fan_id", "created"),
        Index("ix_tips_guest_email_created", "guest_email", "created"),
        Index("ix_tips_card_fingerprint_created", "card_fingerprint", "created"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: new_id("tip"))
    creator_id: Mapped[int] = mapped_column(ForeignKey("creators.id"))
    fan_id: Mapped[int | None] = mapped_column(ForeignKey("fans.id"))
    # A guest tipper (no account) leaves an email, and optionally a name.
    guest_email: Mapped[str | None] = mapped_column(String(254))
    guest_name: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Stored as plain text; the API never renders it as HTML.
    message: Mapped[str | None] = mapped_column(Text)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    payment_status: Mapped[str] = mapped_column(String(20), default="requires_payment")
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    charge_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    client_secret: Mapped[str | None] = mapped_column(String(255))
    # The card's fingerprint (Stripe's, same card same value) when paid server-side.
    card_fingerprint: Mapped[str | None] = mapped_column(String(64))
    next_action: Mapped[str | None] = mapped_column(String(50))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    # The largest refunded total Stripe has reported for the charge (never decreases).
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    dispute_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    dispute_status: Mapped[str | None] = mapped_column(String(40))
    dispute_amount: Mapped[int | None] = mapped_column(BigInteger)
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    succeeded_at: Mapped[int | None] = mapped_column(BigInteger)


class TipRefund(Base):
    __tablename__ = "tip_refunds"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_id("refund")
    )
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id"), index=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(200))
    # pending (asked, no answer yet) | succeeded | failed | canceled, as Stripe spells them.
    status: Mapped[str] = mapped_column(String(20), default="pending")
    requested_by: Mapped[str | None] = mapped_column(String(50))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
