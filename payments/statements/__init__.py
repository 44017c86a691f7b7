"""Monthly statements: what a creator earned, paid and was paid, per month and currency."""

from datetime import timedelta

from payments.domains import Domain

DOMAIN = Domain(
    name="statements",
    models=["payments.statements.models"],
    views="payments.statements.views",
    cli="payments.statements.cli",
    tasks="tasks.statements",
    beat={
        # Freeze the months that have ended (final, with a checksum); idempotent.
        "statements.freeze": {"task": "statements.freeze", "schedule": timedelta(hours=1)},
    },
)
