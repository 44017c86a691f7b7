"""The one way in: ``post`` / ``post_many``, and what is built on them.

Sign convention: **positive = debit, negative = credit**; each journal's entries sum to zero per
currency. Services take the session first, may flush, never commit. A ``post`` that raises has
written nothing when it raised for bad input (checked before any statement); when the database
refuses (a non-negative account would go negative, ``InsufficientBalance``) the transaction
must be rolled back by the caller, as with any failed flush.

Concurrency (PostgreSQL): journal keys are unique (``INSERT ... ON CONFLICT (key) DO
NOTHING``; a second poster of the same key waits for the first to commit, then loads and
compares the existing journal). Creator (running) accounts are updated in the posting
transaction, in account-id order, with their entry ids drawn *after* the row lock, so per
account entry-id order is ``balance_after`` order (``_pg``). Platform accounts are never
updated while posting: their balance is a checkpoint plus newer entries (``jobs``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from payments.errors import InsufficientBalance
from payments.ledger import _pg, _sqlite
from payments.ledger.accounts import (
    AccountInfo,
    AccountLike,
    AccountRef,
    account_by_id,
    account_cache,
    as_info,
    creator_account,
    platform_account,
    resolve_accounts,
)
from payments.ledger.errors import InvalidPosting, JournalKeyReused
from payments.ledger.journals import (
    JournalSpec,
    Leg,
    PostedJournal,
    Prepared,
    Source,
    check_positive,
    check_shape,
    credit,
    debit,
    get_journal,
    journal_by_key,
    load_journals,
    prepare,
    with_legs,
)
from payments.ledger.models import LedgerAccount


def post(
    session: Session,
    key: str,
    kind: str,
    legs: Sequence[Leg],
    *,
    source: Source | None = None,
    effective_at: int | None = None,
    reverses_id: int | None = None,
) -> PostedJournal:
    """Write one balanced journal, idempotently on ``key``.

    The same key again with the same kind, legs and source returns the first journal
    (``new=False``) and writes nothing; with anything different raises ``JournalKeyReused``.
    """
    spec = JournalSpec(key, kind, legs, source, effective_at, reverses_id)
    return post_many(session, [spec])[0]


def post_many(session: Session, journals: Sequence[JournalSpec]) -> list[PostedJournal]:
    """Write many journals in one transaction: one multi-row statement per table.

    Same guarantees as ``post`` for each journal; the answer is in the order given. When it
    raises after writing (``InsufficientBalance``, a missing account), the transaction holds
    part of the batch: roll it back, as with any failed write.
    """
    if not journals:
        return []
    cache = account_cache(session)
    missing: set[AccountRef] = set()
    for spec in journals:
        check_shape(spec)
        for leg in spec.legs:
            account = leg.account
            if isinstance(account, AccountRef) and account not in cache:
                missing.add(account)
    if missing:
        resolve_accounts(session, missing)
        cache = account_cache(session)
    prepared = [prepare(session, cache, spec) for spec in journals]

    # Duplicate keys inside the batch: the first is written, the rest must match it.
    first_by_key: dict[str, Prepared] = {}
    for p in prepared:
        seen = first_by_key.setdefault(p.spec.key, p)
        if seen is not p and not p.same_as(seen):
            raise JournalKeyReused(
                f"Journal key {p.spec.key!r} used twice with different legs.", param="key"
            )
    unique = list(first_by_key.values()) if len(first_by_key) < len(prepared) else prepared
    conn = session.connection()
    written = (_pg if conn.dialect.name == "postgresql" else _sqlite).write(conn, unique)

    if len(written) == len(prepared):  # the usual case: every journal new, no repeats
        return [written[p.spec.key] for p in prepared]
    results: dict[str, PostedJournal] = dict(written)
    existing_keys = [p.spec.key for p in unique if p.spec.key not in written]
    if existing_keys:
        for posted in load_journals(conn, existing_keys):
            p = first_by_key[posted.key]
            if not p.same_as(posted):
                raise JournalKeyReused(
                    f"Journal key {posted.key!r} was already posted with different legs.",
                    param="key",
                )
            results[posted.key] = posted
    out: list[PostedJournal] = []
    for p in prepared:
        posted = results[p.spec.key]
        if posted.new and first_by_key[p.spec.key] is not p:
            posted = posted._replace(new=False)  # a repeat inside the batch
        out.append(posted)
    return out


def reverse(
    session: Session,
    journal_id: int,
    *,
    key: str | None = None,
    kind: str = "reversal",
    effective_at: int | None = None,
) -> PostedJournal:
    """Post the mirror image of a journal, linked to it (one reversal per journal).

    Idempotent: reversing an already reversed journal returns the existing reversal.
    """
    original = get_journal(session, journal_id)
    conn = session.connection()
    prior = conn.execute(
        text("SELECT id, key, kind, source_type, source_id, effective_at, reverses_id "
             "FROM ledger_journals WHERE reverses_id = :id"),
        {"id": journal_id},
    ).all()
    if prior:
        return with_legs(conn, prior)[0]
    legs = [Leg(account_by_id(session, acc), -amount) for acc, amount in original.legs]
    source = (
        (original.source_type, original.source_id)
        if original.source_type and original.source_id
        else None
    )
    return post(
        session,
        key or f"reversal:{original.key}"[:255],
        kind,
        legs,
        source=source,
        effective_at=effective_at,
        reverses_id=journal_id,
    )


def debit_available(
    session: Session,
    key: str,
    kind: str,
    account: AccountLike,
    amount: int,
    to: AccountLike | Sequence[Leg],
    *,
    source: Source | None = None,
    effective_at: int | None = None,
    allow_negative: bool = False,
) -> PostedJournal:
    """Take ``amount`` out of a creator account (payout, escrow release) with a balance check.

    Locks the account row, and refuses with ``insufficient_balance`` when the account holds
    less than ``amount`` (in its normal direction) unless ``allow_negative``. ``to`` is the
    account credited with the whole amount, or the other legs (summing to ``-amount``).
    A retry of a key already posted returns that journal without checking the balance again.
    """
    check_positive(amount)
    info = as_info(session, account)
    if not info.running:
        raise InvalidPosting("debit_available works on creator accounts.", code="invalid_leg")
    sign = 1 if info.normal == "credit" else -1  # a debit reduces a credit-normal balance
    legs: list[Leg] = [Leg(info, sign * amount)]
    if isinstance(to, AccountRef | AccountInfo | LedgerAccount):
        legs.append(Leg(to, -sign * amount))
    else:
        legs.extend(to)
    existing = journal_by_key(session, key)
    if existing is None:
        conn = session.connection()
        stmt = select(LedgerAccount.balance).where(LedgerAccount.id == info.id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        balance = int(conn.execute(stmt).scalar_one())
        # Re-check under the lock: a concurrent retry of this key may have just committed.
        existing = journal_by_key(session, key)
        natural = -balance if info.normal == "credit" else balance
        if existing is None and natural < amount and not allow_negative:
            raise InsufficientBalance(
                f"{info.purpose} holds {natural} {info.currency}; {amount} requested.",
                extra={"available": natural, "currency": info.currency},
            )
    return post(session, key, kind, legs, source=source, effective_at=effective_at)


def earning_journals(
    creator_id: int,
    currency: str,
    *,
    gross: int,
    processor_fee: int,
    platform_fee: int,
    key: str,
    kind: str,
    source: Source,
    effective_at: int,
) -> list[JournalSpec]:
    """The journals of one earning (tip, paid invoice, released milestone), for ``post_many``.

    1. ``{key}``: gross into the creator's ``pending`` (debit ``stripe_balance``);
    2. ``{key}:processor_fee``: Stripe's fee, borne by the creator (debit ``pending``, credit
       ``stripe_balance``: Stripe kept it);
    3. ``{key}:platform_fee``: the platform's fee (debit ``pending``, credit
       ``platform_revenue``).

    Zero fees are left out. All carry ``source``, so maturation and refunds can follow them.
    """
    pending = creator_account(creator_id, "pending", currency)
    stripe = platform_account("stripe_balance", currency)
    specs = [JournalSpec(key, kind, [debit(stripe, gross), credit(pending, gross)], source,
                         effective_at)]
    if processor_fee:
        specs.append(JournalSpec(f"{key}:processor_fee", "fee",
                                 [debit(pending, processor_fee), credit(stripe, processor_fee)],
                                 source, effective_at))
    if platform_fee:
        specs.append(JournalSpec(
            f"{key}:platform_fee", "fee",
            [debit(pending, platform_fee),
             credit(platform_account("platform_revenue", currency), platform_fee)],
            source, effective_at))
    return specs
