"""Ledger accounts: names, purpose rules, resolution (created on first use) and the cache.

An account is ``(owner, purpose, currency)``; the owner is the platform (``owner_id`` 0) or a
creator (``creators.id``). Resolved accounts are cached per session: their attributes never
change, and every posting names several.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from payments.clock import now_ts
from payments.db import insert_ignoring_conflicts, one_of
from payments.errors import NotFound
from payments.ledger.errors import InvalidPosting
from payments.ledger.models import PLATFORM_OWNER_ID, LedgerAccount
from payments.money import CURRENCIES

PLATFORM = "platform"
CREATOR = "creator"


@dataclass(frozen=True, slots=True)
class PurposeRule:
    normal: str  # "debit" | "credit"
    allow_negative: bool


# The platform's shared accounts (checkpointed, never row-locked by postings).
PLATFORM_PURPOSES: dict[str, PurposeRule] = {
    "stripe_balance": PurposeRule("debit", True),  # asset: what Stripe holds for us
    "processor_fees": PurposeRule("debit", True),  # expense: Stripe's fees
    "platform_revenue": PurposeRule("credit", True),  # income: platform fees
    "deal_escrow": PurposeRule("credit", True),  # liability: brand money held (if pooled)
    "refunds_and_disputes": PurposeRule("debit", True),  # clearing
    "payouts_in_transit": PurposeRule("debit", True),  # clearing: transfers not yet paid out
    "payouts_paid": PurposeRule("debit", True),  # memo: mirror of the creators' paid_out
}
# Per creator (running balance on the row). What the platform owes = pending+available+reserved.
CREATOR_PURPOSES: dict[str, PurposeRule] = {
    "pending": PurposeRule("credit", True),  # inside the hold period
    "available": PurposeRule("credit", True),  # payable; negative after a late dispute/refund
    "reserved": PurposeRule("credit", False),  # held against refunds and disputes
    "in_transit": PurposeRule("credit", False),  # payout on its way
    "paid_out": PurposeRule("credit", False),  # cumulative, memo
    "deal_escrow": PurposeRule("credit", False),  # this creator's deals' escrow
}
OWNER_PURPOSES = {PLATFORM: PLATFORM_PURPOSES, CREATOR: CREATOR_PURPOSES}
BALANCE_PURPOSES = ("pending", "available", "reserved", "in_transit", "paid_out")


class AccountRef(NamedTuple):
    """Names an account; resolved (and created if missing) inside ``post``.

    Leg, journal and account names are NamedTuples, not frozen dataclasses: postings build
    and hash several per journal, and tuples do both in C (measured: about a third of a
    batch's client time).
    """

    owner_kind: str
    owner_id: int
    purpose: str
    currency: str


def creator_account(creator_id: int, purpose: str, currency: str) -> AccountRef:
    return AccountRef(CREATOR, creator_id, purpose, currency)


def platform_account(purpose: str, currency: str) -> AccountRef:
    return AccountRef(PLATFORM, PLATFORM_OWNER_ID, purpose, currency)


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """A resolved account (immutable attributes only; balances are read separately)."""

    id: int
    owner_kind: str
    owner_id: int
    purpose: str
    currency: str
    normal: str
    allow_negative: bool
    running: bool

    @property
    def ref(self) -> AccountRef:
        return AccountRef(self.owner_kind, self.owner_id, self.purpose, self.currency)

    @property
    def name(self) -> str:
        owner = PLATFORM if self.owner_kind == PLATFORM else f"creator:{self.owner_id}"
        return f"{owner}:{self.purpose}:{self.currency}"


AccountLike = AccountRef | AccountInfo | LedgerAccount

_CACHE = "ledger.accounts"
_ACCOUNT_COLS = (
    LedgerAccount.id,
    LedgerAccount.owner_kind,
    LedgerAccount.owner_id,
    LedgerAccount.purpose,
    LedgerAccount.currency,
    LedgerAccount.normal,
    LedgerAccount.allow_negative,
    LedgerAccount.running,
)


def account_cache(session: Session) -> dict[Any, AccountInfo]:
    """This session's resolved accounts, by ``AccountRef`` and by id."""
    cache: dict[Any, AccountInfo] = session.info.setdefault(_CACHE, {})
    return cache


@event.listens_for(Session, "after_soft_rollback")
def _forget_accounts(session: Session, _previous: SessionTransaction) -> None:
    # Ids cached inside a transaction that rolled back may not exist any more.
    session.info.pop(_CACHE, None)


def _check_ref(ref: AccountRef) -> None:
    rules = OWNER_PURPOSES.get(ref.owner_kind)
    if rules is None:
        raise InvalidPosting(f"Unknown account owner {ref.owner_kind!r}.", code="unknown_owner")
    if ref.purpose not in rules:
        raise InvalidPosting(
            f"Unknown {ref.owner_kind} account purpose {ref.purpose!r}.", code="unknown_purpose"
        )
    if ref.currency not in CURRENCIES:
        raise InvalidPosting(f"Unsupported currency {ref.currency!r}.", code="unknown_currency")
    if type(ref.owner_id) is not int or (ref.owner_kind == PLATFORM) != (ref.owner_id == 0):
        raise InvalidPosting(f"Bad owner id {ref.owner_id!r}.", code="unknown_owner")


def _info_from_row(row: Any) -> AccountInfo:
    return AccountInfo(
        int(row[0]), row[1], int(row[2]), row[3], row[4], row[5], bool(row[6]), bool(row[7])
    )


def _remember(session: Session, info: AccountInfo) -> AccountInfo:
    cache = account_cache(session)
    cache[info.ref] = info
    cache[info.id] = info
    return info


def resolve_accounts(session: Session, refs: Iterable[AccountRef]) -> dict[AccountRef, AccountInfo]:
    """Look accounts up by name, creating missing ones race-safely (insert-on-conflict)."""
    cache = account_cache(session)
    wanted = {ref for ref in refs}
    missing = [ref for ref in wanted if ref not in cache]
    for ref in missing:
        _check_ref(ref)
    if missing:
        _load_refs(session, missing)
        still = [ref for ref in missing if ref not in cache]
        if still:
            now = now_ts()
            rows = []
            for ref in still:
                rule = OWNER_PURPOSES[ref.owner_kind][ref.purpose]
                rows.append(
                    {
                        "owner_kind": ref.owner_kind,
                        "owner_id": ref.owner_id,
                        "purpose": ref.purpose,
                        "currency": ref.currency,
                        "normal": rule.normal,
                        "allow_negative": rule.allow_negative,
                        "running": ref.owner_kind != PLATFORM,
                        "balance": 0,
                        "last_entry_id": 0,
                        "created": now,
                    }
                )
            stmt = insert_ignoring_conflicts(
                session,
                LedgerAccount.__table__,
                ["owner_kind", "owner_id", "purpose", "currency"],
            )
            session.connection().execute(stmt, rows)
            _load_refs(session, still)
    return {ref: cache[ref] for ref in wanted}


def _load_refs(session: Session, refs: Sequence[AccountRef]) -> None:
    # One query per (owner kind, purpose, currency) with the owner ids as one array on
    # PostgreSQL: constant SQL text, however many accounts a batch names (a long composite IN
    # list is new text to parse every time).
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for r in refs:
        groups[(r.owner_kind, r.purpose, r.currency)].append(r.owner_id)
    conn = session.connection()
    for (kind, purpose, cur), owner_ids in groups.items():
        for i in range(0, len(owner_ids), 1000):
            stmt = select(*_ACCOUNT_COLS).where(
                LedgerAccount.owner_kind == kind, LedgerAccount.purpose == purpose,
                LedgerAccount.currency == cur,
                one_of(session, LedgerAccount.owner_id, owner_ids[i : i + 1000]))
            for row in conn.execute(stmt):
                _remember(session, _info_from_row(row))


def account_for(
    session: Session, owner_kind: str, owner_id: int | None, purpose: str, currency: str
) -> AccountInfo:
    """The account ``(owner, purpose, currency)``, created if it does not exist yet."""
    ref = AccountRef(owner_kind, PLATFORM_OWNER_ID if owner_id is None else owner_id, purpose,
                     currency.lower())
    return resolve_accounts(session, [ref])[ref]


def account_by_id(session: Session, account_id: int) -> AccountInfo:
    cache = account_cache(session)
    if account_id in cache:
        return cache[account_id]
    row = session.connection().execute(
        select(*_ACCOUNT_COLS).where(LedgerAccount.id == account_id)
    ).first()
    if row is None:
        raise NotFound(f"No ledger account {account_id}.", code="account_not_found")
    return _remember(session, _info_from_row(row))


def as_info(session: Session, account: AccountLike) -> AccountInfo:
    """Any way of naming an account, resolved."""
    if isinstance(account, AccountInfo):
        return account
    if isinstance(account, AccountRef):
        return resolve_accounts(session, [account])[account]
    return account_by_id(session, account.id)
