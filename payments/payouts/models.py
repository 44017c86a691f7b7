from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK
from payments.ids import new_id

# pending: journal posted, transfer not confirmed yet; in_transit: the transfer exists;
# paid: the connected account's payout arrived; returning: that payout failed and the
# transfer is being reversed; failed: the money is back in ``available`` (reason shown).
PAYOUT_STATUSES = ("pending", "in_transit", "paid", "returning", "failed")
SCHEDULES = ("daily", "weekly", "monthly", "manual")


class Payout(Base):
    __tablename__ = "payouts"
    __table_args__ = (
        Index("ix_payouts_creator_id_id", "creator_id", "id"),
        Index("ix_payouts_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True,
                                           default=lambda: new_id("payout"))
    creator_id: Mapped[int] = mapped_column(ForeignKey("creators.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    # An automatic payout's business key (``auto:{creator}:{currency}:{YYYY-MM-DD}``).
    schedule_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    destination: Mapped[str] = mapped_column(String(64))  # the connected account
    transfer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The transfer's payment on the connected account (``py_...``): how its payouts name it.
    destination_payment: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payout_id: Mapped[str | None] = mapped_column(String(255))
    reversal_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    journal_id: Mapped[int | None] = mapped_column(BigInteger)
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    transfer_created: Mapped[int | None] = mapped_column(BigInteger)
    paid_at: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[int | None] = mapped_column(BigInteger)
