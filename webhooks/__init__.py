"""The Stripe webhook inbox: verify, store, then apply each event through its domain."""

from datetime import timedelta

from payments.domains import Domain

DOMAIN = Domain(
    name="webhooks",
    models=["webhooks.models"],
    views="webhooks.views",
    cli="webhooks.cli",
    tasks="tasks.webhooks",
    metrics="webhooks.metrics",
    beat={
        # Re-drive inbox rows stuck in "received" (enqueue lost, worker died) and backfill
        # events missed entirely from Stripe's Events API.
        "webhooks.sweep": {"task": "webhooks.sweep", "schedule": timedelta(seconds=30)},
    },
)
