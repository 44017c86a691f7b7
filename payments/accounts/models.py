from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK
from payments.ids import new_id


class Creator(Base):
    __tablename__ = "creators"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_id("creator")
    )
    handle: Mapped[str] = mapped_column(String(30), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(16))  # "kol" | "influencer"
    profession: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2))
    default_currency: Mapped[str] = mapped_column(String(3))
    # Tip settings, in default_currency minor units.
    min_tip_amount: Mapped[int | None] = mapped_column(BigInteger)
    suggested_amounts: Mapped[list[int]] = mapped_column(JSON, default=list)
    tip_goal_amount: Mapped[int | None] = mapped_column(BigInteger)
    tip_goal_title: Mapped[str | None] = mapped_column(String(200))
    # None: the platform default hold period (config.hold_days).
    hold_days: Mapped[int | None] = mapped_column(BigInteger)
    stripe_account_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Set by an admin: the creator takes no tips until unblocked (the reason is never shown
    # to fans).
    tips_blocked_reason: Mapped[str | None] = mapped_column(String(200))
    tips_blocked_at: Mapped[int | None] = mapped_column(BigInteger)
    # Payouts (payments.payouts): how often automatic payouts run (daily, weekly, monthly,
    # manual), and whether the connected account can take them (from ``account.updated``).
    payout_schedule: Mapped[str] = mapped_column(String(10), default="weekly",
                                                 server_default="weekly")
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default=false())
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)


class Fan(Base):
    __tablename__ = "fans"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: new_id("fan"))
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(100))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)


class Brand(Base):
    __tablename__ = "brands"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: new_id("brand"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    country: Mapped[str] = mapped_column(String(2))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)


class ApiKey(Base):
    """An API key, stored as a SHA-256 digest; the key itself is shown once."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_owner", "role", "owner_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # The first characters of the key, for lookup and for people to recognise a key.
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    digest: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # creator | fan | brand | admin
    owner_id: Mapped[int | None] = mapped_column(BigInteger)  # None for admin keys
    label: Mapped[str | None] = mapped_column(String(200))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class IdempotencyRecord(Base):
    """The first answer to a money-moving POST, replayed for the same Idempotency-Key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        Index("uq_idempotency_scope_key", "scope", "endpoint", "key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    scope: Mapped[str] = mapped_column(String(300))  # the principal, e.g. "fan:12"
    endpoint: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(BigInteger)  # None while in flight
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)


