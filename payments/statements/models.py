from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK


class Statement(Base):
    """A final (frozen) month. Open months are computed from the ledger, never stored.

    ``through_entry_id`` is the newest ledger entry of the creator's accounts in that currency
    when it was frozen: an entry the freeze did not see belongs to a later month (as an
    adjustment when it is effective in a frozen one), so a final statement never changes.
    """

    __tablename__ = "statements"
    __table_args__ = (
        Index("uq_statements_creator_period_currency", "creator_id", "period", "currency",
              unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("creators.id"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    currency: Mapped[str] = mapped_column(String(3))
    opening_balance: Mapped[int] = mapped_column(BigInteger)
    closing_balance: Mapped[int] = mapped_column(BigInteger)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    line_count: Mapped[int] = mapped_column(BigInteger)
    through_entry_id: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
