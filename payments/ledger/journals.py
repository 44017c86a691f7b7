"""What a journal is: legs, specs, posted journals, the shape checks, and reading them back.

Below the writers (``_sqlite``, ``_pg``) and ``posting``, which all build on these types.
Reading a journal lives here too, not in ``reads``: ``post_many`` replays an existing key by
loading its journal, and ``reverse`` and ``debit_available`` read before they write.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from payments.clock import now_ts
from payments.errors import NotFound
from payments.ledger.accounts import AccountInfo, AccountLike, AccountRef, as_info
from payments.ledger.errors import InvalidPosting

MAX_AMOUNT = 10**17  # keeps every sum far inside BIGINT
# Any snake_case word up to 32 characters (the column's width) is a journal kind.
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Leg(NamedTuple):
    """One side of a journal: ``amount`` > 0 debits the account, < 0 credits it."""

    account: AccountLike
    amount: int
    currency: str | None = None  # optional; must match the account's currency when given


def debit(account: AccountLike, amount: int) -> Leg:
    check_positive(amount)
    return Leg(account, amount)


def credit(account: AccountLike, amount: int) -> Leg:
    check_positive(amount)
    return Leg(account, -amount)


def check_positive(amount: int) -> None:
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


@dataclass(slots=True)
class Prepared:
    """A spec whose legs are resolved and checked: what the writers take."""

    spec: JournalSpec
    effective_at: int
    source_type: str | None
    source_id: str | None
    legs: list[tuple[AccountInfo, int]] = field(default_factory=list)

    def same_as(self, other: PostedJournal | Prepared) -> bool:
        mine = sorted((a.id, amt) for a, amt in self.legs)
        if isinstance(other, Prepared):
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


def check_shape(spec: JournalSpec) -> None:
    """Refuse a malformed spec before anything is resolved or written."""
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


def prepare(session: Session, cache: dict[Any, AccountInfo], spec: JournalSpec) -> Prepared:
    """Resolve a spec's accounts; refuse a currency mismatch, a repeated account, imbalance."""
    source = spec.source
    p = Prepared(
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
            info = found if found is not None else as_info(session, account)
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


def posted_journal(p: Prepared, journal_id: int) -> PostedJournal:
    """A journal just written (``new=True``)."""
    return PostedJournal(
        journal_id, p.spec.key, p.spec.kind, p.source_type, p.source_id, p.effective_at,
        p.spec.reverses_id, tuple([(a.id, amt) for a, amt in p.legs]), True,
    )


def load_journals(conn: Connection, keys: Sequence[str]) -> list[PostedJournal]:
    jrows = conn.execute(
        text("SELECT id, key, kind, source_type, source_id, effective_at, reverses_id "
             "FROM ledger_journals WHERE key IN :keys")
        .bindparams(bindparam("keys", expanding=True)),
        {"keys": list(keys)},
    ).all()
    return with_legs(conn, jrows)


def with_legs(conn: Connection, jrows: Sequence[Any]) -> list[PostedJournal]:
    if not jrows:
        return []
    legs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r in conn.execute(
        text("SELECT journal_id, account_id, amount FROM ledger_entries "
             "WHERE journal_id IN :ids ORDER BY id")
        .bindparams(bindparam("ids", expanding=True)),
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
    return with_legs(session.connection(), rows)[0]


def journal_by_key(session: Session, key: str) -> PostedJournal | None:
    found = load_journals(session.connection(), [key])
    return found[0] if found else None
