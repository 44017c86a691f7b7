"""The webhook inbox: every Stripe event we handle, stored before anything acts on it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK

RECEIVED = "received"
PROCESSED = "processed"
FAILED = "failed"
STATUSES = (RECEIVED, PROCESSED, FAILED)


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (
        # The worker's claim query reads waiting rows oldest first: a partial index holds only
        # those, in that order, so a batch is the first rows of an index scan however long the
        # processed history grows (no sort of the backlog).
        Index(
            "ix_webhook_events_waiting", "stripe_created", "id",
            postgresql_where=text("status = 'received'"),
            sqlite_where=text("status = 'received'"),
        ),
        Index("ix_webhook_events_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    stripe_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=RECEIVED)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Stripe's own creation time of the event (unix seconds).
    stripe_created: Mapped[int] = mapped_column(BigInteger)
    livemode: Mapped[bool] = mapped_column(Boolean, default=False)
    # How the event reached us: "webhook" (pushed) or "backfill" (the Events API).
    via: Mapped[str] = mapped_column(String(16), default="webhook")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, default=0)
    received_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    processed_at: Mapped[int | None] = mapped_column(BigInteger)


class WebhookCursor(Base):
    """Where the Events API backfill got to (one row per stream)."""

    __tablename__ = "webhook_cursors"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    created_gte: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=now_ts)
