"""Thin ledger tasks for beat: mature holds, roll the platform checkpoints forward."""

from __future__ import annotations

from payments.db import session_scope
from payments.ledger import service
from tasks import app, current_config

# Batches per run; each batch is its own transaction, so a long backlog never holds locks long.
MATURE_BATCHES = 20
MATURE_BATCH = 1000


@app.task(name="ledger.mature", acks_late=True)
def mature() -> int:
    hold_days = current_config().hold_days
    total = 0
    for _ in range(MATURE_BATCHES):
        with session_scope() as session:
            n = service.mature_due(session, default_hold_days=hold_days, limit=MATURE_BATCH)
        total += n
        if n < MATURE_BATCH:
            break
    return total


@app.task(name="ledger.checkpoint", acks_late=True)
def checkpoint() -> int:
    with session_scope() as session:
        return service.checkpoint(session)


@app.task(name="ledger.roll_metrics", acks_late=True)
def roll_metrics() -> int:
    """Beat: roll the ledger's postings counters (GET /metrics) forward."""
    from payments.ledger import metrics

    with session_scope() as session:
        return metrics.roll(session)
