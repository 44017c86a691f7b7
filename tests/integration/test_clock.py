"""The application's clock follows the sandbox's when Stripe is the sandbox."""

from __future__ import annotations

import time
from typing import Any

from payments import clock


def test_now_follows_the_sandbox_clock(sandbox: Any) -> None:
    clock.follow(sandbox.base_url + "/_sandbox/clock")
    try:
        before = clock.now_ts()
        assert abs(before - sandbox.now()) <= 1
        sandbox.advance(3 * 86_400)
        clock.invalidate()
        assert abs(clock.now_ts() - sandbox.now()) <= 1
        assert clock.now_ts() - before >= 3 * 86_400
        with clock.freeze(1_700_000_000):
            assert clock.now_ts() == 1_700_000_000
    finally:
        clock.follow(None)
    assert abs(clock.now_ts() - time.time()) <= 1
