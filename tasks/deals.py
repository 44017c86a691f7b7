"""Thin deal tasks for beat: approve milestones whose review period has passed."""

from __future__ import annotations

import logging

from payments.clock import now_ts
from payments.db import session_scope
from payments.deals import service
from payments.errors import PaymentsError
from tasks import app

log = logging.getLogger(__name__)


@app.task(name="deals.auto_approve", acks_late=True)
def auto_approve() -> int:
    """Each due milestone in its own transaction, under its deal's lock; returns how many."""
    now = now_ts()
    with session_scope() as session:
        due = service.due_milestones(session, now)
    approved = 0
    for milestone_id in due:
        try:
            with session_scope() as session:
                approved += service.auto_approve(session, milestone_id, now)
        except PaymentsError as exc:
            log.warning("milestone %d not auto-approved: %s", milestone_id, exc.message)
    return approved
