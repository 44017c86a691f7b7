"""Heartbeats: the proof that a worker consumes and runs tasks."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session

from payments.health.models import WorkerHeartbeat


def record_heartbeat(session: Session, token: str) -> WorkerHeartbeat:
    beat = WorkerHeartbeat(token=token, pid=os.getpid())
    session.add(beat)
    session.flush()
    return beat
