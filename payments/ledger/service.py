"""The ledger's one way in (``post`` / ``post_many``) and everything that reads it.

Sign convention: **positive = debit, negative = credit**; each journal's entries sum to zero per
currency. Creator accounts are credit-normal liabilities, so what the platform owes a creator
is stored negative; ``creator_balances`` and ``creator_ledger`` answer positive numbers.

Services take the session first, may flush, never commit. A ``post`` that raises has written
nothing when it raised for bad input (checked before any statement); when the database refuses
(a non-negative account would go negative, ``InsufficientBalance``) the transaction must be
rolled back by the caller, as with any failed flush.

Concurrency (PostgreSQL):

* Journal keys are unique: ``INSERT ... ON CONFLICT (key) DO NOTHING``; a second poster of the
  same key waits for the first to commit, then loads and compares the existing journal.
* Creator (running) accounts are updated in the posting transaction, in account-id order, and
  their entry ids are drawn *after* the row lock, so per account the entry-id order is the
  order of ``balance_after``.
* Platform accounts are never updated while posting. Their balance is a checkpoint plus newer
  entries. A posting holds a shared transaction-level advisory lock from its first statement;
  ``checkpoint`` briefly takes the same lock exclusively to read a horizon below which every
  entry is committed, so no late-committing entry can slip under a checkpoint.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from payments.clock import now_ts
from payments.db import insert_ignoring_conflicts, one_of
from payments.errors import Conflict, InsufficientBalance, InvalidRequest, NotFound
from payments.ledger.models import PLATFORM_OWNER_ID, LedgerAccount
from payments.money import CURRENCIES

PLATFORM = "platform"
CREATOR = "creator"

# Advisory lock keys (PostgreSQL): postings share POST_LOCK; checkpoint takes it exclusively.
POST_LOCK = 0x1ED6E7_0001
MATURE_LOCK = 0x1ED6E7_0002
CHECKPOINT_LOCK = 0x1ED6E7_0003
MAX_AMOUNT = 10**17  # keeps every sum far inside BIGINT
SECONDS_PER_DAY = 86_400

# Journal kinds in use; any snake_case word up to 32 characters is accepted.
KINDS = (
    "tip",
    "subscription_payment",
    "deal_funding",
    "deal_release",
    "refund",
    "dispute",
    "fee",
    "payout",
    "reversal",
    "maturation",
    "adjustment",
)
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


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


class InvalidPosting(InvalidRequest):
    """A journal the ledger refuses before writing anything (a bug in the caller)."""

    code = "invalid_posting"


class JournalKeyReused(Conflict):
    code = "journal_key_reused"


# --------------------------------------------------------------------------- accounts


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


def _cache(session: Session) -> dict[Any, AccountInfo]:
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
    cache = _cache(session)
    cache[info.ref] = info
    cache[info.id] = info
    return info


def resolve_accounts(session: Session, refs: Iterable[AccountRef]) -> dict[AccountRef, AccountInfo]:
    """Look accounts up by name, creating missing ones race-safely (insert-on-conflict)."""
    cache = _cache(session)
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
    cache = _cache(session)
    if account_id in cache:
        return cache[account_id]
    row = session.connection().execute(
        select(*_ACCOUNT_COLS).where(LedgerAccount.id == account_id)
    ).first()
    if row is None:
        raise NotFound(f"No ledger account {account_id}.", code="account_not_found")
    return _remember(session, _info_from_row(row))


def _as_info(session: Session, account: AccountLike) -> AccountInfo:
    if isinstance(account, AccountInfo):
        return account
    if isinstance(account, AccountRef):
        return resolve_accounts(session, [account])[account]
    return account_by_id(session, account.id)


# --------------------------------------------------------------------------- journals


class Leg(NamedTuple):
    """One side of a journal: ``amount`` > 0 debits the account, < 0 credits it."""

    account: AccountLike
    amount: int
    currency: str | None = None  # optional; must match the account's currency when given


def debit(account: AccountLike, amount: int) -> Leg:
    _positive(amount)
    return Leg(account, amount)


def credit(account: AccountLike, amount: int) -> Leg:
    _positive(amount)
    return Leg(account, -amount)


def _positive(amount: int) -> None:
    if type(amount) is not int or amount <= 0:
        raise InvalidPosting(f"Amount must be a positive int, got {amount!r}.",
                             code="invalid_amount")


Source = tuple[str, str]


class JournalSpec(NamedTuple):
    """One journal for ``post_many``."""

    key: str
    kind: str
    legs: Sequence[Leg]
    source: Source | None = None
    effective_at: int | None = None
    reverses_id: int | None = None


class PostedJournal(NamedTuple):
    id: int
    key: str
    kind: str
    source_type: str | None
    source_id: str | None
    effective_at: int
    reverses_id: int | None
    legs: tuple[tuple[int, int], ...]  # (account id, amount), in posting order
    new: bool  # False when the key existed and this is the first journal, returned again

    @property
    def public_id(self) -> str:
        return public_id("jr", self.id)


@dataclass(slots=True)
class _Prepared:
    spec: JournalSpec
    effective_at: int
    source_type: str | None
    source_id: str | None
    legs: list[tuple[AccountInfo, int]] = field(default_factory=list)

    def same_as(self, other: PostedJournal | _Prepared) -> bool:
        mine = sorted((a.id, amt) for a, amt in self.legs)
        if isinstance(other, _Prepared):
            theirs = sorted((a.id, amt) for a, amt in other.legs)
            kind, reverses = other.spec.kind, other.spec.reverses_id
            src = (other.source_type, other.source_id)
        else:
            theirs = sorted(other.legs)
            kind, reverses, src = other.kind, other.reverses_id, (other.source_type,
                                                                  other.source_id)
        return (
            mine == theirs
            and kind == self.spec.kind
            and reverses == self.spec.reverses_id
            and src == (self.source_type, self.source_id)
        )


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
    cache = _cache(session)
    missing: set[AccountRef] = set()
    for spec in journals:
        _check_shape(spec)
        for leg in spec.legs:
            account = leg.account
            if isinstance(account, AccountRef) and account not in cache:
                missing.add(account)
    if missing:
        resolve_accounts(session, missing)
        cache = _cache(session)
    prepared = [_prepare(session, cache, spec) for spec in journals]

    # Duplicate keys inside the batch: the first is written, the rest must match it.
    first_by_key: dict[str, _Prepared] = {}
    for p in prepared:
        seen = first_by_key.setdefault(p.spec.key, p)
        if seen is not p and not p.same_as(seen):
            raise JournalKeyReused(
                f"Journal key {p.spec.key!r} used twice with different legs.", param="key"
            )
    unique = list(first_by_key.values()) if len(first_by_key) < len(prepared) else prepared
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        written = _pg_write(conn, unique)
    else:
        inserted = _insert_journals(conn, unique)
        new = [p for p in unique if p.spec.key in inserted]
        written = {j.key: j for j in _write_entries(conn, new, inserted)} if new else {}

    if len(written) == len(prepared):  # the usual case: every journal new, no repeats
        return [written[p.spec.key] for p in prepared]
    results: dict[str, PostedJournal] = dict(written)
    existing_keys = [p.spec.key for p in unique if p.spec.key not in written]
    if existing_keys:
        for posted in _load_journals(conn, existing_keys):
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


def _check_shape(spec: JournalSpec) -> None:
    if not isinstance(spec.key, str) or not 0 < len(spec.key) <= 255:
        raise InvalidPosting("A journal key is a string of 1-255 characters.", code="invalid_key")
    if not isinstance(spec.kind, str) or not _KIND_RE.match(spec.kind):
        raise InvalidPosting(f"Bad journal kind {spec.kind!r}.", code="invalid_kind")
    if len(spec.legs) < 2:
        raise InvalidPosting("A journal needs at least two legs.", code="too_few_legs")
    for leg in spec.legs:
        if not isinstance(leg, Leg):
            raise InvalidPosting(f"Not a Leg: {leg!r}.", code="invalid_leg")
        if type(leg.amount) is not int:
            raise InvalidPosting(
                f"Leg amounts are int minor units, got {type(leg.amount).__name__}.",
                code="invalid_amount",
            )
        if leg.amount == 0 or abs(leg.amount) > MAX_AMOUNT:
            raise InvalidPosting(f"Bad leg amount {leg.amount}.", code="invalid_amount")
    if spec.effective_at is not None and type(spec.effective_at) is not int:
        raise InvalidPosting("effective_at is unix seconds (int).", code="invalid_effective_at")
    if spec.source is not None and not (
        isinstance(spec.source, tuple)
        and len(spec.source) == 2
        and all(isinstance(s, str) and s for s in spec.source)
        and len(spec.source[0]) <= 32
        and len(spec.source[1]) <= 255
    ):
        raise InvalidPosting("source is a (type, id) pair of strings.", code="invalid_source")


def _prepare(session: Session, cache: dict[Any, AccountInfo], spec: JournalSpec) -> _Prepared:
    source = spec.source
    p = _Prepared(
        spec,
        now_ts() if spec.effective_at is None else spec.effective_at,
        source[0] if source else None,
        source[1] if source else None,
    )
    legs = p.legs
    currencies: set[str] = set()
    seen: set[int] = set()
    total = 0
    for leg in spec.legs:
        account = leg.account
        if type(account) is AccountInfo:
            info = account
        else:
            found = cache.get(account) if isinstance(account, AccountRef) else None
            info = found if found is not None else _as_info(session, account)
        if leg.currency is not None and leg.currency != info.currency:
            raise InvalidPosting(
                f"A {leg.currency} leg on {info.name}, which holds {info.currency}.",
                code="currency_mismatch",
            )
        if info.id in seen:
            raise InvalidPosting(
                f"{info.name} appears twice in journal {spec.key!r}; net the legs.",
                code="duplicate_account",
            )
        seen.add(info.id)
        legs.append((info, leg.amount))
        currencies.add(info.currency)
        total += leg.amount
    if len(currencies) == 1:
        unbalanced = {next(iter(currencies)): total} if total else {}
    else:
        sums: dict[str, int] = defaultdict(int)
        for info, amount in legs:
            sums[info.currency] += amount
        unbalanced = {c: v for c, v in sums.items() if v != 0}
    if unbalanced:
        raise InvalidPosting(
            f"Journal {spec.key!r} does not balance: {unbalanced}.", code="unbalanced_journal"
        )
    return p


def _insert_journals(conn: Connection, unique: list[_Prepared]) -> dict[str, int]:
    """SQLite: insert the journals that are new; answer {key: journal id}."""
    created = now_ts()
    out: dict[str, int] = {}
    for start in range(0, len(unique), 2000):
        chunk = unique[start : start + 2000]
        params: dict[str, Any] = {"c": created}
        rows = []
        for i, p in enumerate(chunk):
            params.update({
                f"k{i}": p.spec.key, f"t{i}": p.spec.kind, f"st{i}": p.source_type,
                f"si{i}": p.source_id, f"e{i}": p.effective_at, f"r{i}": p.spec.reverses_id,
                f"n{i}": len(p.legs),
            })
            rows.append(f"(:k{i}, :t{i}, :st{i}, :si{i}, :e{i}, :c, :r{i}, :n{i})")
        sql = ("INSERT INTO ledger_journals (key, kind, source_type, source_id, effective_at, "  # noqa: S608
               f"created, reverses_id, leg_count) VALUES {', '.join(rows)} "
               "ON CONFLICT (key) DO NOTHING RETURNING id, key")
        try:
            result = conn.execute(text(sql), params)
        except IntegrityError as exc:
            if "reverses_id" in str(exc.orig):
                raise Conflict("That journal is already reversed.",
                               code="journal_already_reversed") from None
            raise
        for row in result:
            out[row[1]] = int(row[0])
    return out


def _write_entries(
    conn: Connection, new: list[_Prepared], inserted: dict[str, int]
) -> list[PostedJournal]:
    """SQLite: writers are serialised (BEGIN IMMEDIATE), so entry ids are simply max + 1."""
    flat = [(ji, info, amount) for ji, p in enumerate(new) for info, amount in p.legs]
    base = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM ledger_entries")).scalar()
               or 0)
    ids = list(range(base + 1, base + 1 + len(flat)))
    after: list[int | None] = [None] * len(flat)
    by_account = _running_positions(flat)
    try:
        _update_running(conn, flat, ids, after, by_account)
    except IntegrityError as exc:
        if "non_negative" in str(exc.orig) or "CHECK" in str(exc.orig):
            raise _insufficient() from None
        raise
    for start in range(0, len(flat), 5000):
        params: dict[str, Any] = {}
        rows = []
        for i in range(start, min(start + 5000, len(flat))):
            ji, info, amount = flat[i]
            params.update({
                f"i{i}": ids[i], f"j{i}": inserted[new[ji].spec.key], f"a{i}": info.id,
                f"m{i}": amount, f"c{i}": info.currency, f"b{i}": after[i],
            })
            rows.append(f"(:i{i}, :j{i}, :a{i}, :m{i}, :c{i}, :b{i})")
        conn.execute(
            text("INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency, "  # noqa: S608
                 f"balance_after) VALUES {', '.join(rows)}"),
            params,
        )
    return [_posted(p, inserted[p.spec.key]) for p in new]


def _posted(p: _Prepared, journal_id: int) -> PostedJournal:
    return PostedJournal(
        journal_id, p.spec.key, p.spec.kind, p.source_type, p.source_id, p.effective_at,
        p.spec.reverses_id, tuple([(a.id, amt) for a, amt in p.legs]), True,
    )


def _insufficient() -> InsufficientBalance:
    return InsufficientBalance(
        "The posting would take a non-negative account below zero; roll back.")


def _running_positions(flat: list[tuple[int, AccountInfo, int]]) -> dict[int, list[int]]:
    by_account: dict[int, list[int]] = defaultdict(list)
    for idx, (_, info, _amt) in enumerate(flat):
        if info.running:
            by_account[info.id].append(idx)
    return by_account


# PostgreSQL: constant statements (prepared once per connection), arrays instead of long
# VALUES lists, executed on the driver connection inside the session's transaction.

_PG_ONE = """
WITH j AS (
  INSERT INTO ledger_journals (key, kind, source_type, source_id, effective_at, created,
                               reverses_id, leg_count)
  SELECT %(key)s::text, %(kind)s::text, %(st)s::text, %(si)s::text, %(eff)s::bigint,
         %(created)s::bigint, %(rev)s::bigint, %(n)s::int
  FROM (SELECT pg_advisory_xact_lock_shared(%(lock)s::bigint)) AS lk WHERE true
  ON CONFLICT (key) DO NOTHING RETURNING id
), u AS (
  UPDATE ledger_accounts SET balance = balance + %(d)s::bigint,
         last_entry_id = nextval('ledger_entries_id_seq')
  FROM j WHERE ledger_accounts.id = %(acc)s::bigint
  RETURNING ledger_accounts.balance, ledger_accounts.last_entry_id
), e AS (
  INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency, balance_after)
  SELECT u.last_entry_id, j.id, %(acc)s::bigint, %(d)s::bigint, %(cur)s::text, u.balance
  FROM j, u
  UNION ALL
  SELECT nextval('ledger_entries_id_seq'), j.id, x.a, x.m, x.c, NULL
  FROM j, unnest(%(pa)s::bigint[], %(pm)s::bigint[], %(pc)s::text[]) AS x(a, m, c)
)
SELECT id FROM j
"""

# A batch in one statement, so that the creator rows are locked for as little as possible
# (from the middle of this statement to the commit): the journals (ON CONFLICT DO NOTHING,
# under the shared posting lock); the entries of the new ones (``v``); only then the creator
# rows, locked in id order (``l``); the entry ids drawn after every lock is held (``e`` reads
# an aggregate of ``l``), so per account entry-id order is balance_after order; the entries
# with their running balances; the creator rows' new balances (``u`` reads an aggregate of
# ``e``, so it touches only rows ``l`` already holds). sum(bigint) is numeric: cast back.
_PG_BATCH = """
WITH j AS (
  INSERT INTO ledger_journals (key, kind, source_type, source_id, effective_at, created,
                               reverses_id, leg_count)
  SELECT x.key, x.kind, x.st, x.si, x.eff, %(created)s::bigint, x.rev, x.n
  FROM unnest(%(key)b::text[], %(kind)b::text[], %(st)b::text[], %(si)b::text[],
              %(eff)s::bigint[], %(rev)s::bigint[], %(n)s::int[])
       AS x(key, kind, st, si, eff, rev, n),
       (SELECT pg_advisory_xact_lock_shared(%(lock)s::bigint)) AS lk
  WHERE true
  ON CONFLICT (key) DO NOTHING RETURNING id, key
), jn AS MATERIALIZED (
  SELECT j.id, j.key, k.n FROM j JOIN unnest(%(key)b::text[]) WITH ORDINALITY AS k(key, n)
  ON k.key = j.key
), v AS MATERIALIZED (
  SELECT jn.id AS jid, x.a, x.m, x.c, x.r, x.o
  FROM unnest(%(ej)s::bigint[], %(ea)s::bigint[], %(em)s::bigint[], %(ec)b::text[],
              %(er)s::boolean[]) WITH ORDINALITY AS x(jn, a, m, c, r, o)
  JOIN jn ON jn.n = x.jn
), l AS MATERIALIZED (
  SELECT a.id, a.balance
  FROM unnest((SELECT array_agg(DISTINCT v.a ORDER BY v.a) FROM v WHERE v.r)) AS r(id)
  CROSS JOIN LATERAL (SELECT id, balance FROM ledger_accounts WHERE id = r.id FOR UPDATE) AS a
), e AS MATERIALIZED (
  SELECT nextval('ledger_entries_id_seq') AS id, v.jid, v.a, v.m, v.c, v.r
  FROM v, (SELECT count(*) AS n FROM l) AS lk WHERE lk.n >= 0 ORDER BY v.o
), ins AS (
  INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency, balance_after)
  SELECT e.id, e.jid, e.a, e.m, e.c,
         CASE WHEN e.r THEN (l.balance + sum(e.m) OVER (PARTITION BY e.a ORDER BY e.id))::bigint
         END
  FROM e LEFT JOIN l ON l.id = e.a
), u AS (
  UPDATE ledger_accounts
  SET balance = ledger_accounts.balance + d.deltas[array_position(d.ids, ledger_accounts.id)],
      last_entry_id = d.lasts[array_position(d.ids, ledger_accounts.id)]
  FROM (SELECT array_agg(g.a ORDER BY g.a) AS ids, array_agg(g.delta ORDER BY g.a) AS deltas,
               array_agg(g.last ORDER BY g.a) AS lasts
        FROM (SELECT e.a, sum(e.m)::bigint AS delta, max(e.id) AS last FROM e WHERE e.r
              GROUP BY e.a) AS g) AS d
  WHERE ledger_accounts.id = ANY(d.ids)
)
SELECT array_agg(jn.id ORDER BY jn.n), array_agg(jn.key ORDER BY jn.n),
       (SELECT count(*) FROM l), (SELECT count(DISTINCT v.a) FROM v WHERE v.r)
FROM jn
"""


def _pg_write(conn: Connection, unique: list[_Prepared]) -> dict[str, PostedJournal]:
    """PostgreSQL: write the new journals among ``unique``; answer them by key.

    One statement (plus the caller's commit), see ``_PG_BATCH``. Parameters are arrays:
    strings in binary, integers and booleans as one array literal each (joining ``str()`` is
    several times cheaper than adapting each value).
    """
    import psycopg

    dconn: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    created = now_ts()
    try:
        if len(unique) == 1 and sum(1 for a, _ in unique[0].legs if a.running) <= 1:
            return _pg_write_one(dconn, unique[0], created)

        e_journal: list[int] = []
        e_account: list[int] = []
        e_amount: list[int] = []
        e_currency: list[str] = []
        e_running: list[str] = []
        for n, p in enumerate(unique, 1):
            for info, amount in p.legs:
                e_journal.append(n)
                e_account.append(info.id)
                e_amount.append(amount)
                e_currency.append(info.currency)
                e_running.append("t" if info.running else "f")
        spec_of = [p.spec for p in unique]
        with dconn.cursor(binary=True) as cur:
            row = cur.execute(_PG_BATCH, {
                "created": created, "lock": POST_LOCK,
                "key": [s.key for s in spec_of], "kind": [s.kind for s in spec_of],
                "st": [p.source_type for p in unique], "si": [p.source_id for p in unique],
                "eff": _int_array([p.effective_at for p in unique]),
                "rev": _int_array([s.reverses_id for s in spec_of]),
                "n": _int_array([len(p.legs) for p in unique]),
                "ej": _int_array(e_journal), "ea": _int_array(e_account),
                "em": _int_array(e_amount), "ec": e_currency,
                "er": "{" + ",".join(e_running) + "}",
            }, prepare=True).fetchone()
        assert row is not None
        jids, jkeys, locked, wanted = row
        if not jids:
            return {}
        if locked != wanted:
            raise NotFound("A creator ledger account is missing.", code="account_not_found")
        by_key = {p.spec.key: p for p in unique}
        return {k: _posted(by_key[k], jid) for k, jid in zip(jkeys, jids, strict=True)}
    except psycopg.errors.CheckViolation:
        raise _insufficient() from None
    except psycopg.errors.IntegrityConstraintViolation:
        # The entries check (migration 0006): post() has already checked balance and legs,
        # so an incomplete journal here means a creator account row was not there to update.
        raise NotFound("A creator ledger account is missing.",
                       code="account_not_found") from None
    except psycopg.errors.UniqueViolation as exc:
        if "reverses_id" in str(exc):
            raise Conflict("That journal is already reversed.",
                           code="journal_already_reversed") from None
        raise


def _int_array(values: Sequence[int | None]) -> str:
    """A bigint[] literal: joining str() is several times cheaper than adapting each int."""
    if None in values:
        return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"
    return "{" + ",".join(map(str, values)) + "}"


def _pg_write_one(dconn: Any, p: _Prepared, created: int) -> dict[str, PostedJournal]:
    """One journal with at most one creator leg: one statement (journal, row, entries)."""
    run = [(a, m) for a, m in p.legs if a.running]
    plat = [(a, m) for a, m in p.legs if not a.running]
    with dconn.cursor() as cur:
        cur.execute(_PG_ONE, {
            "key": p.spec.key, "kind": p.spec.kind, "st": p.source_type,
            "si": p.source_id, "eff": p.effective_at, "created": created,
            "rev": p.spec.reverses_id, "n": len(p.legs), "lock": POST_LOCK,
            "d": run[0][1] if run else None, "acc": run[0][0].id if run else None,
            "cur": run[0][0].currency if run else None,
            "pa": [a.id for a, _ in plat], "pm": [m for _, m in plat],
            "pc": [a.currency for a, _ in plat],
        }, prepare=True)
        row = cur.fetchone()
    return {p.spec.key: _posted(p, int(row[0]))} if row else {}


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def _update_running(
    conn: Connection,
    flat: list[tuple[int, AccountInfo, int]],
    ids: list[int],
    after: list[int | None],
    by_account: dict[int, list[int]],
) -> None:
    """SQLite: apply the deltas to the creator accounts; fill each entry's balance_after."""
    for acc in sorted(by_account):
        delta = sum(flat[i][2] for i in by_account[acc])
        last = max(ids[i] for i in by_account[acc])
        updated = conn.execute(
            text("UPDATE ledger_accounts SET balance = balance + :d, last_entry_id = :e "
                 "WHERE id = :id RETURNING balance"),
            {"d": delta, "e": last, "id": acc},
        ).scalar_one_or_none()
        if updated is None:
            raise NotFound("A creator ledger account is missing.", code="account_not_found")
        running = int(updated) - delta
        for i in by_account[acc]:
            running += flat[i][2]
            after[i] = running


def _load_journals(conn: Connection, keys: Sequence[str]) -> list[PostedJournal]:
    jrows = conn.execute(
        text("SELECT id, key, kind, source_type, source_id, effective_at, reverses_id "
             "FROM ledger_journals WHERE key IN :keys").bindparams(_expanding("keys")),
        {"keys": list(keys)},
    ).all()
    return _with_legs(conn, jrows)


def _with_legs(conn: Connection, jrows: Sequence[Any]) -> list[PostedJournal]:
    if not jrows:
        return []
    legs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r in conn.execute(
        text("SELECT journal_id, account_id, amount FROM ledger_entries "
             "WHERE journal_id IN :ids ORDER BY id").bindparams(_expanding("ids")),
        {"ids": [r[0] for r in jrows]},
    ):
        legs[int(r[0])].append((int(r[1]), int(r[2])))
    return [
        PostedJournal(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]),
                      None if r[6] is None else int(r[6]), tuple(legs[int(r[0])]), False)
        for r in jrows
    ]


def get_journal(session: Session, journal_id: int) -> PostedJournal:
    rows = session.connection().execute(
        text("SELECT id, key, kind, source_type, source_id, effective_at, reverses_id "
             "FROM ledger_journals WHERE id = :id"),
        {"id": journal_id},
    ).all()
    if not rows:
        raise NotFound(f"No journal {journal_id}.", code="journal_not_found")
    return _with_legs(session.connection(), rows)[0]


def journal_by_key(session: Session, key: str) -> PostedJournal | None:
    found = _load_journals(session.connection(), [key])
    return found[0] if found else None


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
        return _with_legs(conn, prior)[0]
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


# --------------------------------------------------------------------------- check-then-debit


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
    _positive(amount)
    info = _as_info(session, account)
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


# --------------------------------------------------------------------------- reads


def account_balance(session: Session, account: AccountLike) -> int:
    """The signed (debit-positive) current balance of any account."""
    info = _as_info(session, account)
    return int(session.connection().execute(
        text("SELECT a.balance + COALESCE((SELECT SUM(e.amount) FROM ledger_entries e "
             "WHERE e.account_id = a.id AND e.id > a.last_entry_id), 0) "
             "FROM ledger_accounts a WHERE a.id = :id"),
        {"id": info.id},
    ).scalar_one())


def creator_balances(session: Session, creator_id: int) -> list[dict[str, Any]]:
    """``[{currency, pending, available, reserved, in_transit, paid_out}]``, positive = owed.

    One indexed lookup of the creator's account rows, whatever the number of entries.
    """
    rows = session.connection().execute(
        text("SELECT currency, purpose, normal, balance FROM ledger_accounts "
             "WHERE owner_kind = 'creator' AND owner_id = :id"),
        {"id": creator_id},
    )
    out: dict[str, dict[str, Any]] = {}
    for cur, purpose, normal, balance in rows:
        line = out.setdefault(cur, {"currency": cur, **dict.fromkeys(BALANCE_PURPOSES, 0)})
        if purpose in BALANCE_PURPOSES:
            line[purpose] = -int(balance) if normal == "credit" else int(balance)
    return [out[c] for c in sorted(out)]


def source_balance(session: Session, account: AccountLike, source: Source) -> int:
    """Signed sum of the account's entries whose journal has ``source``."""
    info = _as_info(session, account)
    return int(session.connection().execute(
        text("SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e "
             "JOIN ledger_journals j ON j.id = e.journal_id "
             "WHERE j.source_type = :st AND j.source_id = :si AND e.account_id = :a"),
        {"st": source[0], "si": source[1], "a": info.id},
    ).scalar_one())


def pending_for_source(session: Session, creator_id: int, currency: str, source: Source) -> int:
    """What of ``source``'s earnings is still pending (positive = owed, not yet matured).

    A refund or dispute of an earning debits ``pending`` up to this and ``available`` for
    the rest, carrying the earning's source, so maturation never matures money gone.
    """
    ref = creator_account(creator_id, "pending", currency)
    return -source_balance(session, ref, source)


def public_id(prefix: str, n: int) -> str:
    return f"{prefix}_{_b62(n)}"


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _b62(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 62)
        out = _B62[r] + out
        if n == 0:
            return out


def parse_public_id(prefix: str, value: str) -> int | None:
    if not isinstance(value, str) or not value.startswith(prefix + "_"):
        return None
    n = 0
    body = value[len(prefix) + 1 :]
    if not body or len(body) > 12:
        return None
    for ch in body:
        i = _B62.find(ch)
        if i < 0:
            return None
        n = n * 62 + i
    return n


def creator_ledger(
    session: Session,
    creator_id: int,
    *,
    limit: int = 20,
    starting_after: int | None = None,
    currency: str | None = None,
    effective_gte: int | None = None,
    effective_lt: int | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """The creator's own entries, newest first, with ``balance_after`` (creator's sign)."""
    conn = session.connection()
    accounts = {
        int(r[0]): (r[1], r[2])
        for r in conn.execute(
            text("SELECT id, purpose, normal FROM ledger_accounts WHERE owner_kind = 'creator' "  # noqa: S608 - placeholders only
                 "AND owner_id = :id" + (" AND currency = :cur" if currency else "")),
            {"id": creator_id, "cur": currency},
        )
    }
    if not accounts:
        return [], False
    where = ["e.account_id IN :accs"]
    params: dict[str, Any] = {"accs": list(accounts), "n": limit + 1}
    if starting_after is not None:
        where.append("e.id < :after")
        params["after"] = starting_after
    if effective_gte is not None:
        where.append("j.effective_at >= :gte")
        params["gte"] = effective_gte
    if effective_lt is not None:
        where.append("j.effective_at < :lt")
        params["lt"] = effective_lt
    rows = conn.execute(
        text("SELECT e.id, e.journal_id, e.account_id, e.amount, e.currency, e.balance_after, "  # noqa: S608 - placeholders only
             "j.kind, j.created, j.effective_at, j.source_type, j.source_id "
             "FROM ledger_entries e JOIN ledger_journals j ON j.id = e.journal_id "
             f"WHERE {' AND '.join(where)} ORDER BY e.id DESC LIMIT :n")
        .bindparams(_expanding("accs")),
        params,
    ).all()
    lines = []
    for r in rows[:limit]:
        purpose, normal = accounts[int(r[2])]
        sign = -1 if normal == "credit" else 1
        lines.append({
            "id": public_id("le", int(r[0])),
            "object": "ledger_entry",
            "created": int(r[7]),
            "effective_at": int(r[8]),
            "journal": public_id("jr", int(r[1])),
            "kind": r[6],
            "amount": sign * int(r[3]),
            "currency": r[4],
            "account": purpose,
            "balance_after": None if r[5] is None else sign * int(r[5]),
            "source": {"type": r[9], "id": r[10]} if r[9] else None,
        })
    return lines, len(rows) > limit


def trial_balance(session: Session) -> dict[str, Any]:
    """Every account's current signed balance (debit positive) and the totals per currency."""
    rows = session.connection().execute(
        text("SELECT a.id, a.owner_kind, a.owner_id, a.purpose, a.currency, "
             "a.balance + COALESCE((SELECT SUM(e.amount) FROM ledger_entries e "
             "WHERE e.account_id = a.id AND e.id > a.last_entry_id), 0) "
             "FROM ledger_accounts a ORDER BY a.currency, a.owner_kind DESC, a.owner_id, "
             "a.purpose")
    ).all()
    creators = _creator_public_ids(session, {int(r[2]) for r in rows if r[1] == CREATOR})
    totals: dict[str, int] = defaultdict(int)
    accounts = []
    for acc_id, kind, owner_id, purpose, cur, balance in rows:
        owner = PLATFORM if kind == PLATFORM else creators.get(int(owner_id), str(owner_id))
        accounts.append({
            "account": public_id("la", int(acc_id)),
            "owner": owner,
            "purpose": purpose,
            "currency": cur,
            "balance": int(balance),
        })
        totals[cur] += int(balance)
    return {
        "accounts": accounts,
        "totals": [{"currency": c, "total": totals[c]} for c in sorted(totals)],
    }


def _creator_public_ids(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    from payments.accounts.models import Creator

    out: dict[int, str] = {}
    id_list = sorted(ids)
    for i in range(0, len(id_list), 1000):
        for cid, pid in session.connection().execute(
            select(Creator.id, Creator.public_id).where(Creator.id.in_(id_list[i : i + 1000]))
        ):
            out[int(cid)] = pid
    return out


# --------------------------------------------------------------------------- verify


@dataclass
class Drift:
    account_id: int
    name: str
    stored: int
    from_entries: int
    what: str


@dataclass
class VerifyReport:
    accounts: int = 0
    entries: int = 0
    journals: int = 0
    drifts: list[Drift] = field(default_factory=list)
    unbalanced_journals: list[int] = field(default_factory=list)
    bad_leg_counts: list[int] = field(default_factory=list)
    orphan_journal_ids: list[int] = field(default_factory=list)  # entries whose journal is gone
    currency_mismatches: int = 0
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (
            self.drifts
            or self.unbalanced_journals
            or self.bad_leg_counts
            or self.orphan_journal_ids
            or self.currency_mismatches
            or any(self.totals.values())
        )


def verify(session: Session, progress: Any = None) -> VerifyReport:
    """Recompute every balance from the entries and check the books.

    * running (creator) accounts: ``balance`` equals the sum of all their entries, and the
      newest entry's ``balance_after`` equals ``balance``;
    * platform accounts: the checkpoint equals the sum of entries up to ``last_entry_id``;
    * every journal sums to zero per currency and has ``leg_count`` entries; every entry's
      journal exists;
    * the whole ledger sums to zero per currency; every entry is in its account's currency.

    Each check is one statement, so it reads one consistent snapshot while postings go on.
    """
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    if pg:
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
    step = progress or (lambda _msg: None)
    report = VerifyReport()
    step("accounts")
    rows = conn.execute(text(
        "SELECT a.id, a.owner_kind, a.owner_id, a.purpose, a.currency, a.running, a.balance, "
        "a.last_entry_id, COALESCE(s.total, 0), COALESCE(s.upto, 0), COALESCE(s.n, 0), "
        "COALESCE(s.mismatched, 0), "
        "(SELECT le.balance_after FROM ledger_entries le WHERE le.id = a.last_entry_id) "
        "FROM ledger_accounts a LEFT JOIN ("
        "  SELECT e.account_id, SUM(e.amount) AS total, "
        "  SUM(CASE WHEN e.id <= x.last_entry_id THEN e.amount ELSE 0 END) AS upto, "
        "  COUNT(*) AS n, SUM(CASE WHEN e.currency <> x.currency THEN 1 ELSE 0 END) AS mismatched"
        "  FROM ledger_entries e JOIN ledger_accounts x ON x.id = e.account_id "
        "  GROUP BY e.account_id) s ON s.account_id = a.id"
    )).all()
    totals: dict[str, int] = defaultdict(int)
    for (acc_id, kind, owner_id, purpose, cur, running, balance, last, total, upto, n,
         mismatched, last_after) in rows:
        report.accounts += 1
        report.entries += int(n)
        report.currency_mismatches += int(mismatched)
        totals[cur] += int(total)
        info_name = (f"{PLATFORM if kind == PLATFORM else 'creator:' + str(owner_id)}:"
                     f"{purpose}:{cur}")
        if running:
            if int(balance) != int(total):
                report.drifts.append(Drift(int(acc_id), info_name, int(balance), int(total),
                                           "running balance"))
            elif int(last) and (last_after is None or int(last_after) != int(balance)):
                report.drifts.append(Drift(
                    int(acc_id), info_name, int(balance),
                    int(last_after) if last_after is not None else 0, "balance_after"))
        elif int(balance) != int(upto):
            report.drifts.append(Drift(int(acc_id), info_name, int(balance), int(upto),
                                       "checkpoint"))
    report.totals = dict(sorted(totals.items()))
    step("journals")
    # SQLite has no FULL JOIN before 3.39: the orphans are a second, anti-join query there.
    journals_sql = (
        "SELECT j.id, j.leg_count, s.n, s.bad, s.journal_id FROM ledger_journals j {join} ("
        "  SELECT journal_id, SUM(n) AS n, MAX(bad) AS bad FROM ("
        "    SELECT journal_id, COUNT(*) AS n, "
        "    CASE WHEN SUM(amount) <> 0 THEN 1 ELSE 0 END AS bad "
        "    FROM ledger_entries GROUP BY journal_id, currency) x "
        "  GROUP BY journal_id) s ON s.journal_id = j.id "
        "WHERE j.id IS NULL OR s.n IS NULL OR s.n <> j.leg_count OR s.bad = 1"
    )
    journal_rows = conn.execute(
        text(journals_sql.format(join="FULL JOIN" if pg else "LEFT JOIN")))
    if not pg:
        orphans = conn.execute(text(
            "SELECT DISTINCT e.journal_id FROM ledger_entries e WHERE NOT EXISTS "
            "(SELECT 1 FROM ledger_journals j WHERE j.id = e.journal_id)")).all()
        report.orphan_journal_ids.extend(int(r[0]) for r in orphans)
    for jid, legs, n, bad, entries_jid in journal_rows:
        if jid is None:
            report.orphan_journal_ids.append(int(entries_jid))
            continue
        if bad:
            report.unbalanced_journals.append(int(jid))
        if n is None or int(n) != int(legs):
            report.bad_leg_counts.append(int(jid))
    report.journals = int(conn.execute(text("SELECT COUNT(*) FROM ledger_journals")).scalar_one())
    step("done")
    return report


# --------------------------------------------------------------------------- periodic jobs


def _safe_horizon(session: Session) -> int | None:
    """An entry id H such that every entry with id <= H is committed (or visible to us).

    PostgreSQL: take the posting lock exclusively for an instant (waiting out in-flight
    postings, which hold it shared from their first statement), read MAX(id), let go. Gives
    up after a short lock_timeout (None) rather than stall postings. SQLite: writers are
    serialised, and we hold the write lock.
    """
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM ledger_entries"))
                   .scalar_one())
    try:
        with session.begin_nested():
            conn.execute(text("SET LOCAL lock_timeout = '800ms'"))
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": POST_LOCK})
    except DBAPIError:
        return None
    try:
        return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM ledger_entries"))
                   .scalar_one())
    finally:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": POST_LOCK})
        conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))


def _single_flight(session: Session, lock: int) -> bool:
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock})
                .scalar_one())


def checkpoint(session: Session) -> int:
    """Roll the platform accounts' checkpoints forward to a safe horizon; answer how many."""
    if not _single_flight(session, CHECKPOINT_LOCK):
        return 0
    horizon = _safe_horizon(session)
    if horizon is None:
        return 0
    result = session.connection().execute(
        text("UPDATE ledger_accounts SET balance = balance + COALESCE((SELECT SUM(e.amount) "
             "FROM ledger_entries e WHERE e.account_id = ledger_accounts.id "
             "AND e.id > ledger_accounts.last_entry_id AND e.id <= :h), 0), last_entry_id = :h "
             "WHERE running = false AND last_entry_id < :h"),
        {"h": horizon},
    )
    return int(result.rowcount)


def _cursor(session: Session, name: str) -> int:
    value = session.connection().execute(
        text("SELECT value FROM ledger_cursors WHERE name = :n"), {"n": name}
    ).scalar()
    return int(value or 0)


def _set_cursor(session: Session, name: str, value: int) -> None:
    conn = session.connection()
    updated = conn.execute(
        text("UPDATE ledger_cursors SET value = :v WHERE name = :n"), {"n": name, "v": value}
    )
    if not updated.rowcount:
        conn.execute(text("INSERT INTO ledger_cursors (name, value) VALUES (:n, :v)"),
                     {"n": name, "v": value})


def mature_due(
    session: Session,
    *,
    default_hold_days: int = 7,
    now: int | None = None,
    limit: int = 1000,
) -> int:
    """Move matured earnings from ``pending`` to ``available``; answer how many journals.

    A journal that credits a creator's ``pending`` matures at ``effective_at + hold`` (the
    creator's ``hold_days``, else ``default_hold_days``) into a ``maturation`` journal keyed
    ``mature:{journal id}:{account id}``, with the same source and that effective time. It
    moves at most: the credit itself, what is still pending for its source (refunds and
    disputes before maturity carry the earning's source and debit pending), and the pending
    balance (maturation never takes pending below zero). Idempotent; one runner at a time.
    """
    if not _single_flight(session, MATURE_LOCK):
        return 0
    now = now_ts() if now is None else now
    cursor = _cursor(session, "mature")
    horizon = _safe_horizon(session)
    if horizon is None:
        return 0
    conn = session.connection()
    base = (
        "FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "JOIN ledger_journals j ON j.id = e.journal_id "
        "LEFT JOIN creators c ON c.id = a.owner_id "
        "WHERE e.id > :cur AND e.id <= :h AND a.owner_kind = 'creator' "
        "AND a.purpose = 'pending' AND e.amount < 0 AND j.kind <> 'maturation' "
    )
    due_expr = "j.effective_at + COALESCE(c.hold_days, :hd) * 86400"
    params = {"cur": cursor, "h": horizon, "hd": default_hold_days, "now": now, "n": limit}
    rows = conn.execute(text(
        "SELECT e.id, e.journal_id, e.account_id, e.amount, j.source_type, j.source_id, "  # noqa: S608 - placeholders only
        f"a.owner_id, a.currency, {due_expr} AS due " + base
        + f"AND {due_expr} <= :now AND NOT EXISTS (SELECT 1 FROM ledger_journals m "  # noqa: S608 - placeholders only
        "WHERE m.key = 'mature:' || e.journal_id || ':' || e.account_id) "
        "ORDER BY e.id LIMIT :n"
    ), params).all()
    first_not_due = conn.execute(
        text(f"SELECT MIN(e.id) {base} AND {due_expr} > :now"), params
    ).scalar()
    posted = 0
    pg = conn.dialect.name == "postgresql"
    for _eid, jid, acc, amount, stype, sid, owner_id, cur, due in rows:
        lock = select(LedgerAccount.balance).where(LedgerAccount.id == acc)
        balance = int(conn.execute(lock.with_for_update() if pg else lock).scalar_one())
        credit_amount = -int(amount)
        owed = -balance
        if stype and sid:
            still = pending_for_source(session, int(owner_id), cur, (stype, sid))
        else:
            still = credit_amount
        move = min(credit_amount, still, owed)
        if move <= 0:
            continue
        post(
            session,
            f"mature:{jid}:{acc}",
            "maturation",
            [Leg(account_by_id(session, int(acc)), move),
             Leg(creator_account(int(owner_id), "available", cur), -move)],
            source=(stype, sid) if stype and sid else None,
            effective_at=int(due),
        )
        posted += 1
    if first_not_due is not None:
        new_cursor = int(first_not_due) - 1
        if len(rows) == limit:
            new_cursor = min(new_cursor, int(rows[-1][0]))
    else:
        new_cursor = int(rows[-1][0]) if len(rows) == limit else horizon
    if new_cursor > cursor:
        _set_cursor(session, "mature", new_cursor)
    return posted


# --------------------------------------------------------------------------- helpers for earners


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
