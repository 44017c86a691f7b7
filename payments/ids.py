"""Public ids: a prefix per type and an opaque body (``cr_...``, ``tip_...``, ``jr_...``).

There are two kinds, because there are two kinds of rows:

* **Domain objects** (creators, fans, brands, tips, refunds) get a random id, ``new_id``:
  minted once, stored in the row's ``public_id`` column (unique) and looked up by it. It
  gives nothing away (not how many rows there are, not which came first) and is known
  before the row is inserted.
* **Ledger rows** (journals, entries, accounts) have their public id derived from the row
  id, ``public_id(prefix, n)`` (base62) and ``parse_public_id``: nothing is stored. Those
  tables are append-only, so a row id never changes or gets reused; they are the hottest
  tables, where one more unique index per row would cost every posting; and the order is
  the point: ``starting_after=le_...`` pages a creator's entries by entry id.
"""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

# type -> prefix, for both kinds: one place to see which prefixes are taken.
PREFIXES = {
    # Random, stored (new_id).
    "creator": "cr",
    "fan": "fan",
    "brand": "br",
    "tip": "tip",
    "refund": "re",  # tip refunds
    # Derived from ledger row ids (public_id).
    "journal": "jr",
    "entry": "le",
    "account": "la",  # the trial balance's account ids
    # Reserved: nothing mints these yet. docs/api.md has these domains in the contract
    # ("not served yet"); the prefixes are kept so they are not given to anything else.
    "tier": "tier",
    "subscription": "sub",
    "deal": "deal",
    "milestone": "ms",  # a deal's milestones
    "payout": "po",
}


def new_id(kind: str) -> str:
    """A fresh public id: the type's prefix and 20 random base62 characters (~119 bits)."""
    return f"{PREFIXES[kind]}_" + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def random_token(n: int = 32) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


# Digit order, not the random alphabet's: this one is a positional encoding of an integer.
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def public_id(prefix: str, n: int) -> str:
    """``{prefix}_{n in base62}``: the public id of ledger row ``n`` (``le_``, ``jr_``, ``la_``)."""
    return f"{prefix}_{_b62(n)}"


def _b62(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 62)
        out = _B62[r] + out
        if n == 0:
            return out


def parse_public_id(prefix: str, value: str) -> int | None:
    """The row id in ``value`` if it is a ``public_id`` with ``prefix``, else None."""
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
