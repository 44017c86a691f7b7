"""Thin tasks for the webhook inbox."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError

from payments.db import session_scope
from tasks import app, current_config
from webhooks import inbox, worker

log = logging.getLogger(__name__)


# Only the database going away raises out of the worker (one event's trouble stays on its
# row): retry with exponential backoff, 1 s doubling to 30 s, for as long as it takes.
_DATABASE_AWAY = {"autoretry_for": (DBAPIError,), "retry_backoff": True,
                  "retry_backoff_max": 30, "max_retries": None}


@app.task(name="webhooks.drain", **_DATABASE_AWAY)
def drain() -> int:
    """Process every due inbox row, in batches."""
    return worker.drain(current_config())


@app.task(name="webhooks.process", **_DATABASE_AWAY)
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
