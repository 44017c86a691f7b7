"""Offline Stripe: a loopback HTTP server speaking the subset of Stripe's API creatorpay uses.

Entry points: :func:`serve` (blocking), :func:`start_in_thread` (tests), :func:`main` (CLI,
``python -m payments.sandbox``). The signing helper lives in :mod:`payments.sandbox.signing`.
"""

from payments.sandbox.server import SandboxServer, main, serve, start_in_thread
from payments.sandbox.signing import compute_signature, sign_payload

__all__ = ["SandboxServer", "compute_signature", "main", "serve", "sign_payload",
           "start_in_thread"]
