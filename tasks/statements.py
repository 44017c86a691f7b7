"""Thin statement tasks: freeze the months that have ended."""

from __future__ import annotations

from payments.db import session_scope
from payments.statements import service
from tasks import app


@app.task(name="statements.freeze", acks_late=True)
def freeze() -> int:
    return service.freeze_all(session_scope)
