"""A task that proves a worker consumes: it records a heartbeat the caller can read."""

from __future__ import annotations

from payments.db import session_scope
from payments.health.service import record_heartbeat
from tasks import app


@app.task(name="health.ping")
def ping(token: str) -> int:
    with session_scope() as session:
        return record_heartbeat(session, token).pid
