"""The ledger's public surface: import from here (``from payments.ledger import service``).

The code lives in modules by concern, each using only the ones before it:

* ``accounts``: account names, purpose rules, resolution and the per-session cache;
* ``journals``: legs, journal specs, posted journals, the shape checks, reading journals;
* ``_sqlite``, ``_pg``: the two writers;
* ``posting``: ``post`` / ``post_many`` and what is built on them (``reverse``,
  ``debit_available``, ``earning_journals``);
* ``reads``: balances, a creator's lines, the trial balance;
* ``verify``: recompute the books; ``jobs``: checkpoints and maturation.

This module only re-exports them, and wires in the one thing the ledger takes from another
domain: each creator's hold period, for ``mature_due``. Public ids (``public_id``,
``parse_public_id``) live in ``payments.ids``. See docs/ledger.md.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from payments.ids import parse_public_id, public_id
from payments.ledger import jobs
from payments.ledger.accounts import (
    BALANCE_PURPOSES,
    CREATOR,
    CREATOR_PURPOSES,
    OWNER_PURPOSES,
    PLATFORM,
    PLATFORM_PURPOSES,
    AccountInfo,
    AccountLike,
    AccountRef,
    PurposeRule,
    account_by_id,
    account_for,
    creator_account,
    platform_account,
    resolve_accounts,
)
from payments.ledger.errors import InvalidPosting, JournalKeyReused
from payments.ledger.jobs import checkpoint
from payments.ledger.journals import (
    JournalSpec,
    Leg,
    PostedJournal,
    Source,
    credit,
    debit,
    get_journal,
    journal_by_key,
)

# Private, re-exported for tests/unit/ledger/test_shapes.py, which checks shapes directly.
from payments.ledger.journals import check_shape as _check_shape  # noqa: F401
from payments.ledger.posting import debit_available, earning_journals, post, post_many, reverse
from payments.ledger.reads import (
    account_balance,
    creator_balances,
    creator_ledger,
    pending_for_source,
    source_balance,
    trial_balance,
)
from payments.ledger.verify import Drift, VerifyReport, verify

__all__ = [
    "BALANCE_PURPOSES",
    "CREATOR",
    "CREATOR_PURPOSES",
    "OWNER_PURPOSES",
    "PLATFORM",
    "PLATFORM_PURPOSES",
    "AccountInfo",
    "AccountLike",
    "AccountRef",
    "Drift",
    "InvalidPosting",
    "JournalKeyReused",
    "JournalSpec",
    "Leg",
    "PostedJournal",
    "PurposeRule",
    "Source",
    "VerifyReport",
    "account_balance",
    "account_by_id",
    "account_for",
    "checkpoint",
    "creator_account",
    "creator_balances",
    "creator_hold_days",
    "creator_ledger",
    "credit",
    "debit",
    "debit_available",
    "earning_journals",
    "get_journal",
    "journal_by_key",
    "mature_due",
    "parse_public_id",
    "pending_for_source",
    "platform_account",
    "post",
    "post_many",
    "public_id",
    "resolve_accounts",
    "reverse",
    "source_balance",
    "trial_balance",
    "verify",
]


def creator_hold_days() -> Select[int, int | None]:
    """Rows ``(creator id, hold_days)``; ``hold_days`` NULL means the platform default.

    The accounts domain's data, read here so that ``jobs`` never names its table.
    """
    # At call time: importing the ledger loads no other domain.
    from payments.accounts.models import Creator

    return select(Creator.id, Creator.hold_days)


def mature_due(
    session: Session,
    *,
    default_hold_days: int = 7,
    now: int | None = None,
    limit: int = 1000,
) -> int:
    """``jobs.mature_due`` with each creator's own hold period (``creator_hold_days``)."""
    return jobs.mature_due(session, default_hold_days=default_hold_days,
                           hold_days=creator_hold_days(), now=now, limit=limit)
