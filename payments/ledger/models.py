"""Ledger tables: accounts, journals, entries, and the maturation cursor.

Sign convention: an entry's ``amount`` is signed minor units, **positive = debit, negative =
credit**. Every journal's entries sum to zero per currency. A liability the platform owes a
creator (``pending``, ``available`` ...) is credit-normal, so internally it is negative when
money is owed; the API negates it so creators read positive numbers.

Creator accounts are ``running``: ``balance`` is the current balance and ``last_entry_id`` the
newest entry it includes, both updated in the posting transaction. Platform accounts are
shared by every posting and never take a row lock there: ``balance`` is a checkpoint that
covers every entry with ``id <= last_entry_id``; the current balance is the checkpoint plus
the sum of newer entries (see ``jobs.checkpoint``).

``ledger_journals`` and ``ledger_entries`` are append-only (a trigger on PostgreSQL).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from payments.clock import now_ts
from payments.db import Base, BigIntPK

PLATFORM_OWNER_ID = 0


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        Index(
            "uq_ledger_accounts_owner_purpose",
            "owner_kind",
            "owner_id",
            "purpose",
            "currency",
            unique=True,
        ),
        # A running account that may not go negative in its normal direction never does,
        # whatever code path posts to it: the database refuses the UPDATE.
        CheckConstraint(
            "running = false OR allow_negative = true OR "
            "(CASE WHEN normal = 'credit' THEN -balance ELSE balance END) >= 0",
            name="non_negative",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # "platform" | "creator"
    owner_id: Mapped[int] = mapped_column(BigInteger)  # creators.id; 0 for the platform
    purpose: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    normal: Mapped[str] = mapped_column(String(6))  # "debit" | "credit"
    allow_negative: Mapped[bool] = mapped_column(Boolean)
    running: Mapped[bool] = mapped_column(Boolean)
    # running: the current balance; platform: the checkpoint (entries with id <= last_entry_id).
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    last_entry_id: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[int] = mapped_column(BigInteger, default=now_ts)


class Journal(Base):
    __tablename__ = "ledger_journals"
    __table_args__ = (
        Index("ix_ledger_journals_source", "source_type", "source_id"),
        # At most one reversal per journal. Partial: nearly every journal has no
        # ``reverses_id``, and a full unique index would still take an entry for each NULL,
        # all on its rightmost page (measured: ~6% of a post_many batch).
        Index(
            "uq_ledger_journals_reverses", "reverses_id", unique=True,
            postgresql_where=text("reverses_id IS NOT NULL"),
            sqlite_where=text("reverses_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    source_type: Mapped[str | None] = mapped_column(String(32))
    source_id: Mapped[str | None] = mapped_column(String(255))
    effective_at: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[int] = mapped_column(BigInteger)
    # A correction is a reversing journal linked to what it reverses (at most one each).
    reverses_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_journals.id")
    )
    leg_count: Mapped[int] = mapped_column(Integer)


class Entry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
        Index("ix_ledger_entries_journal_id", "journal_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # No row foreign key either: a trigger checks each INSERT as a whole instead (the
    # journals exist, are complete and balance; migration 0006 says why).
    journal_id: Mapped[int] = mapped_column(BigInteger)
    # No foreign key to ledger_accounts on purpose: on PostgreSQL a foreign key check takes a
    # KEY SHARE lock on the referenced row, and the platform's accounts are referenced by
    # every posting (that lock is exactly the hot row the design avoids). Account rows are
    # never deleted, and post() only writes ids it has just resolved from that table.
    account_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)  # positive = debit, negative = credit
    currency: Mapped[str] = mapped_column(String(3))
    # Running (creator) accounts: the account's balance right after this entry.
    balance_after: Mapped[int | None] = mapped_column(BigInteger)


class LedgerCursor(Base):
    """Bookkeeping for periodic jobs (the maturation scan); not part of the books."""

    __tablename__ = "ledger_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
