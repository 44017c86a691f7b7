"""Offline Stripe: a loopback HTTP server speaking the subset of Stripe's API creatorpay uses.

Entry points: :func:`serve` (blocking), :func:`start_in_thread` (tests), :func:`main` (CLI,
``python -m payments.sandbox``). Webhook signing is :func:`payments.gateway.sign_payload`: the
sandbox signs with the same code production and tests use.
"""

from payments.sandbox.server import SandboxServer, main, serve, start_in_thread

__all__ = ["SandboxServer", "main", "serve", "start_in_thread"]
