"""Reconciliation: the ledger against Stripe's balance transactions and transfers, per day."""

from datetime import timedelta

from payments.domains import Domain

DOMAIN = Domain(
    name="reconciliation",
    models=["payments.reconciliation.models"],
    views="payments.reconciliation.views",
    beat={
        # Yesterday's report (UTC, business clock), every morning; idempotent (replaces it).
        "payouts.reconcile": {"task": "payouts.reconcile", "schedule": timedelta(hours=6)},
    },
)
