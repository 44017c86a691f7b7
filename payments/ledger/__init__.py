"""The double-entry ledger: the source of truth for every cent (see docs/ledger.md)."""

from datetime import timedelta

from payments.domains import Domain

DOMAIN = Domain(
    name="ledger",
    models=["payments.ledger.models"],
    views="payments.ledger.views",
    cli="payments.ledger.cli",
    tasks="tasks.ledger",
    metrics="payments.ledger.metrics",
    beat={
        # Move matured credits from pending to available.
        "ledger.mature": {"task": "ledger.mature", "schedule": timedelta(minutes=5)},
        # Roll the platform accounts' balance checkpoints forward.
        "ledger.checkpoint": {"task": "ledger.checkpoint", "schedule": timedelta(minutes=1)},
        # Roll the postings counters of GET /metrics forward (payments/ledger/metrics.py).
        "ledger.roll_metrics": {"task": "ledger.roll_metrics",
                                "schedule": timedelta(minutes=1)},
    },
)
