"""The application's one clock.

Everything that asks "what time is it" for business purposes (holds, review periods,
statement months, renewals) calls ``now()``. Tests move it with ``freeze()``; when the app
runs against the Stripe sandbox it follows the sandbox clock, so advancing that clock moves
the whole system together. Webhook signature checks deliberately use wall-clock time.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_state = threading.local()
_lock = threading.Lock()
_remote_url: str | None = None
_remote_offset: float = 0.0
_remote_checked: float = 0.0
# The sandbox clock only moves when someone advances it; a short cache keeps now() cheap.
_REMOTE_TTL = 1.0


def follow(url: str | None) -> None:
    """Follow a sandbox clock at ``url`` (``.../_sandbox/clock``); ``None`` uses wall time."""
    global _remote_url, _remote_checked, _remote_offset
    with _lock:
        _remote_url = url
        _remote_checked = 0.0
        _remote_offset = 0.0


def _remote_now() -> float:
    global _remote_offset, _remote_checked
    wall = time.time()
    if wall - _remote_checked > _REMOTE_TTL and _remote_url is not None:
        # Asked at most once per TTL, answered or not: an unreachable sandbox must not cost
        # every caller a connection attempt (the last known offset stands meanwhile).
        _remote_checked = wall
        try:
            with urllib.request.urlopen(_remote_url, timeout=2) as resp:  # noqa: S310 - loopback
                remote = float(json.load(resp)["now"])
            with _lock:
                _remote_offset = remote - time.time()
        except (OSError, ValueError, KeyError):
            pass  # sandbox briefly unreachable: keep the last known offset
    return wall + _remote_offset


def now_ts() -> int:
    """Business time as unix seconds."""
    frozen = getattr(_state, "frozen", None)
    if frozen is not None:
        return int(frozen)
    if _remote_url is not None:
        return int(_remote_now())
    return int(time.time())


def now() -> datetime:
    return datetime.fromtimestamp(now_ts(), UTC)


def invalidate() -> None:
    """Forget the cached sandbox offset (after advancing the sandbox clock)."""
    global _remote_checked
    _remote_checked = 0.0


@contextmanager
def freeze(ts: int) -> Iterator[None]:
    """Pin ``now()`` for this thread (tests)."""
    previous = getattr(_state, "frozen", None)
    _state.frozen = ts
    try:
        yield
    finally:
        _state.frozen = previous
