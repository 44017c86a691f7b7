"""Payouts: transfers of a creator's ``available`` balance to their connected account, on a
schedule or on request; the reserve; the connected account's payout status."""

from datetime import timedelta

from payments.domains import Domain

DOMAIN = Domain(
    name="payouts",
    models=["payments.payouts.models"],
    views="payments.payouts.views",
    cli="payments.payouts.cli",
    tasks="tasks.payouts",
    events="payments.payouts.events",
    beat={
        # Automatic payouts of creators whose schedule is due (idempotent per day).
        "payouts.run_schedule": {"task": "payouts.run_schedule",
                                 "schedule": timedelta(minutes=15)},
        # Hold the reserve share of newly matured credits; release what has served its time.
        "payouts.reserve": {"task": "payouts.reserve", "schedule": timedelta(minutes=5)},
        # Transfers not yet confirmed (Stripe was unreachable) and returns owed after a failed
        # connected-account payout.
        "payouts.retry": {"task": "payouts.retry", "schedule": timedelta(minutes=1)},
    },
)
