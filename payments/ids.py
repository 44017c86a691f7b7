"""Public ids: opaque strings with a prefix per type (``cr_``, ``fan_``, ``tip_`` ...)."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

PREFIXES = {
    "creator": "cr",
    "fan": "fan",
    "brand": "br",
    "tip": "tip",
    "tier": "tier",
    "subscription": "sub",
    "deal": "deal",
    "milestone": "ms",
    "payout": "po",
    "refund": "re",
    "journal": "jr",
    "entry": "le",
    "event": "whe",
}


def new_id(kind: str) -> str:
    """A fresh public id: the type's prefix and 20 random base62 characters (~119 bits)."""
    return f"{PREFIXES[kind]}_" + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def random_token(n: int = 32) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))
