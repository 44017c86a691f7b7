"""Sponsored-post deals: brand money held in escrow, released to the creator per milestone."""

from datetime import timedelta

from payments.domains import Domain

DOMAIN = Domain(
    name="deals",
    models=["payments.deals.models"],
    views="payments.deals.views",
    tasks="tasks.deals",
    events="payments.deals.events",
    beat={
        # Approve submitted milestones left unanswered for the deal's review_days.
        "deals.auto_approve": {"task": "deals.auto_approve",
                               "schedule": timedelta(minutes=1)},
    },
)
