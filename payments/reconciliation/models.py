from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK


class ReconciliationReport(Base):
    """The last report made for a day (each run replaces it)."""

    __tablename__ = "reconciliation_reports"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    day: Mapped[str] = mapped_column(String(10), unique=True)  # YYYY-MM-DD, UTC
    clean: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
