"""Thin tasks for the webhook inbox."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DBAPIError

from payments.db import session_scope
from tasks import app, current_config
from webhooks import pipeline
from webhooks import service as inbox

log = logging.getLogger(__name__)


@app.task(name="webhooks.drain", bind=True, max_retries=None)
def drain(self: Any) -> int:
    """Process every due inbox row, in batches (retried if the database is away)."""
    try:
        return pipeline.drain(current_config())
    except DBAPIError as exc:
        raise self.retry(exc=exc, countdown=min(2 ** min(self.request.retries, 5), 30)) from exc


@app.task(name="webhooks.process")
def process(event_id: int) -> bool:
    """Process one inbox row now (replays)."""
    return pipeline.process_one(current_config(), event_id)


@app.task(name="webhooks.sweep")
def sweep(stuck_after: int = 10) -> dict[str, int]:
    """Beat: backfill missed events from the Events API, re-drive rows left waiting."""
    config = current_config()
    try:
        backfilled = pipeline.backfill(config)
    except Exception as exc:  # noqa: BLE001 - Stripe away: re-driving stored rows still helps
        log.warning("events backfill failed: %s", exc)
        backfilled = 0
    with session_scope() as session:
        waiting = inbox.waiting_count(session, older_than=stuck_after)
    if waiting or backfilled:
        drain.delay()
    return {"backfilled": backfilled, "waiting": waiting}
