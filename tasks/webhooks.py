"""Thin tasks for the webhook inbox."""

from __future__ import annotations

import logging

from payments.db import session_scope
from tasks import app, current_config
from webhooks import inbox, worker

log = logging.getLogger(__name__)


# Only trouble no event causes raises out of the worker (one event's trouble stays on its
# row: webhooks.worker.is_infrastructure): retry with exponential backoff, 1 s doubling to
# 30 s, for as long as it takes. No attempt of any event is counted meanwhile.
_INFRASTRUCTURE = {"autoretry_for": (Exception,), "retry_backoff": True,
                   "retry_backoff_max": 30, "max_retries": None}
# A drain stops between batches after this long and hands over to a fresh task, well inside
# the task's soft time limit (celeryconfig.task_soft_time_limit).
DRAIN_SECONDS = 240


@app.task(name="webhooks.drain", **_INFRASTRUCTURE)
def drain() -> int:
    """Process every due inbox row, in batches."""
    done = worker.drain(current_config(), max_seconds=DRAIN_SECONDS)
    with session_scope() as session:
        if inbox.waiting_count(session):
            drain.delay()  # stopped on time with rows still due
    return done


@app.task(name="webhooks.process", **_INFRASTRUCTURE)
def process(event_id: int) -> bool:
    """Process one inbox row now (replays)."""
    return worker.process_one(current_config(), event_id)


@app.task(name="webhooks.sweep")
def sweep(stuck_after: int = 10) -> dict[str, int]:
    """Beat: backfill missed events from the Events API, re-drive rows left waiting."""
    config = current_config()
    try:
        backfilled = worker.backfill(config)
    except Exception as exc:  # noqa: BLE001 - Stripe away: re-driving stored rows still helps
        log.warning("events backfill failed: %s", exc)
        backfilled = 0
    with session_scope() as session:
        waiting = inbox.waiting_count(session, older_than=stuck_after)
    if waiting or backfilled:
        drain.delay()
    return {"backfilled": backfilled, "waiting": waiting}
