from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK


class DashboardSignIn(Base):
    """A sign-in link that was opened: its nonce is unique, so a link works once; the session
    it opened ends at ``expires_at`` or when signed out (or when its API key is revoked)."""

    __tablename__ = "dashboard_sign_ins"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    nonce: Mapped[str] = mapped_column(String(32), unique=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("creators.id"), index=True)
    # The API key the link was made with: revoking it ends its links and sessions.
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    signed_out_at: Mapped[int | None] = mapped_column(BigInteger)
