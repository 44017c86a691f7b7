"""Stripe webhook signatures, without importing ``stripe``.

Stripe signs ``f"{timestamp}.{payload}"`` with HMAC-SHA256 keyed by the endpoint secret and
sends ``Stripe-Signature: t=<unix>,v1=<hex>``. The sandbox signs its deliveries with this and
tests use it to forge events; ``payments.gateway`` verifies with the SDK's own code.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``b"{timestamp}." + payload`` keyed by ``secret``."""
    signed = str(int(timestamp)).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload``, exactly as Stripe makes it.

    ``timestamp`` defaults to the real wall-clock time (never a sandbox clock).
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={ts},v1={compute_signature(payload, secret, ts)}"
