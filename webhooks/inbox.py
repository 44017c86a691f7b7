"""Inbox operations: store, claim, settle, replay, list. No Flask, Celery or Stripe here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Text, bindparam, cast, func, select, update
from sqlalchemy.orm import Session

from payments.clock import now_ts
from payments.db import for_update, insert_ignoring_conflicts
from payments.errors import InvalidTransition, NotFound
from webhooks.models import FAILED, PROCESSED, RECEIVED, WebhookCursor, WebhookEvent

# Transient failures are retried this many times, with exponential backoff, then marked failed.
MAX_ATTEMPTS = 8
MAX_ERROR_CHARS = 2000


_STORE: dict[str, Any] = {}


def _store_statement(session: Session) -> Any:
    """The store statement, built once per dialect (only the parameters change)."""
    dialect = session.get_bind().dialect.name
    stmt = _STORE.get(dialect)
    if stmt is None:
        cols = ("stripe_id", "type", "status", "payload", "stripe_created", "livemode", "via",
                "attempts", "next_attempt_at", "received_at")
        values: dict[str, Any] = {
            c: bindparam(c, type_=WebhookEvent.__table__.c[c].type) for c in cols}
        # The payload arrives as the JSON text Stripe signed: stored as sent, not re-encoded.
        payload = bindparam("payload", type_=Text)
        values["payload"] = cast(payload, JSON) if dialect == "postgresql" else payload
        stmt = _STORE[dialect] = (
            insert_ignoring_conflicts(session, WebhookEvent.__table__, ["stripe_id"])
            .values(values)
            .returning(WebhookEvent.__table__.c.id, WebhookEvent.__table__.c.stripe_id)
        )
    return stmt


def _store_params(event: dict[str, Any], via: str, now: int,
                  raw: bytes | None = None) -> dict[str, Any]:
    return {
        "stripe_id": event["id"],
        "type": event["type"],
        "status": RECEIVED,
        "payload": raw.decode("utf-8") if raw is not None else json.dumps(event),
        "stripe_created": int(event.get("created") or 0),
        "livemode": bool(event.get("livemode")),
        "via": via,
        "attempts": 0,
        "next_attempt_at": 0,
        "received_at": now,
    }


def store_event(session: Session, event: dict[str, Any], via: str = "webhook",
                raw: bytes | None = None) -> int | None:
    """``INSERT ... ON CONFLICT (stripe_id) DO NOTHING``; the new row's id, or None if known.

    ``raw`` is the body the event was parsed from (a webhook's verified bytes), stored as is.
    """
    return session.execute(_store_statement(session),
                           _store_params(event, via, now_ts(), raw)).scalar_one_or_none()


def store_events_returning(
    session: Session, events: Sequence[dict[str, Any]], via: str = "webhook",
    raws: Sequence[bytes | None] | None = None,
) -> dict[str, int]:
    """``store_event`` for many events in one statement: {stripe id: new row id} of the new."""
    raws = raws if raws is not None else [None] * len(events)
    if session.get_bind().dialect.name == "postgresql":
        return _pg_store(session, events, via, raws)
    if len(events) == 1:
        new_id = store_event(session, events[0], via, raws[0])
        return {} if new_id is None else {events[0]["id"]: new_id}
    now = now_ts()
    rows = session.execute(_store_statement(session),
                           [_store_params(e, via, now, r) for e, r in zip(events, raws,
                                                                        strict=True)])
    return {stripe_id: int(row_id) for row_id, stripe_id in rows}


# PostgreSQL: one constant statement whatever the batch size (prepared once per connection,
# never re-parsed: a multi-row VALUES list is new text for every size, and splitting that
# text cost a tenth of the endpoint's CPU), columns as arrays, the body as the text Stripe
# signed. Duplicates inside one batch are fine: DO NOTHING skips the second.
_PG_STORE = """
INSERT INTO webhook_events (stripe_id, type, status, payload, stripe_created, livemode, via,
                            attempts, next_attempt_at, received_at)
SELECT x.sid, x.typ, 'received', x.body::json, x.created, x.live, %(via)s::text, 0, 0,
       %(now)s::bigint
FROM unnest(%(sid)b::text[], %(typ)b::text[], %(body)b::text[], %(created)s::bigint[],
            %(live)s::boolean[]) AS x(sid, typ, body, created, live)
ON CONFLICT (stripe_id) DO NOTHING RETURNING id, stripe_id
"""


def _pg_store(session: Session, events: Sequence[dict[str, Any]], via: str,
              raws: Sequence[bytes | None]) -> dict[str, int]:
    return store_events_pg(session.connection().connection.driver_connection, events, via, raws)


def store_events_pg(dconn: Any, events: Sequence[dict[str, Any]], via: str = "webhook",
                    raws: Sequence[bytes | None] | None = None) -> dict[str, int]:
    """PostgreSQL: ``store_events_returning`` on a psycopg connection (the webhook writer's own,
    in autocommit: the one statement is the transaction)."""
    raws = raws if raws is not None else [None] * len(events)
    with dconn.cursor(binary=True) as cur:
        return {stripe_id: int(row_id) for row_id, stripe_id in cur.execute(_PG_STORE, {
            "via": via, "now": now_ts(),
            "sid": [e["id"] for e in events], "typ": [e["type"] for e in events],
            "body": [r.decode("utf-8") if r is not None else json.dumps(e)
                     for e, r in zip(events, raws, strict=True)],
            "created": "{" + ",".join([str(int(e.get("created") or 0)) for e in events]) + "}",
            "live": "{" + ",".join(["t" if e.get("livemode") else "f" for e in events]) + "}",
        }, prepare=True)}


def store_events(session: Session, events: Sequence[dict[str, Any]], via: str) -> int:
    """Store many events; returns how many were new."""
    return len(store_events_returning(session, events, via)) if events else 0


def claim_batch(session: Session, limit: int) -> list[WebhookEvent]:
    """Lock up to ``limit`` due rows in ``received``; concurrent workers get disjoint batches.

    Oldest first by Stripe's creation time, so a batch sees a charge before its refund when
    both are waiting; handlers do not rely on it (events may come in any order).
    """
    stmt = (
        select(WebhookEvent)
        .where(WebhookEvent.status == RECEIVED, WebhookEvent.next_attempt_at <= now_ts())
        .order_by(WebhookEvent.stripe_created, WebhookEvent.id)
        .limit(limit)
    )
    return list(session.scalars(for_update(session, stmt, skip_locked=True)))


def lock_event(session: Session, event_id: int) -> WebhookEvent | None:
    stmt = select(WebhookEvent).where(WebhookEvent.id == event_id)
    return session.scalar(for_update(session, stmt))


def mark_processed(row: WebhookEvent) -> None:
    row.status = PROCESSED
    row.processed_at = now_ts()
    row.last_error = None
    row.attempts += 1


def mark_failed(row: WebhookEvent, error: str) -> None:
    row.status = FAILED
    row.attempts += 1
    row.last_error = error[:MAX_ERROR_CHARS]


def schedule_retry(row: WebhookEvent, error: str) -> None:
    """A transient failure: try again later, or give up as ``failed`` after MAX_ATTEMPTS."""
    row.attempts += 1
    row.last_error = error[:MAX_ERROR_CHARS]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = FAILED
    else:
        row.next_attempt_at = now_ts() + min(2**row.attempts, 300)


def replay(session: Session, event_id: int) -> WebhookEvent:
    """Put a failed (or processed) event back in the queue; handlers are idempotent."""
    row = lock_event(session, event_id)
    if row is None:
        raise NotFound("No such webhook event.", code="webhook_event_not_found")
    if row.status == RECEIVED:
        raise InvalidTransition("The event is already waiting to be processed.")
    row.status = RECEIVED
    row.next_attempt_at = 0
    row.last_error = None
    row.attempts = 0  # a fresh start: its retries are counted from here
    session.flush()
    return row


def replay_failed(session: Session, limit: int | None = None) -> list[int]:
    ids = list(
        session.scalars(
            select(WebhookEvent.id).where(WebhookEvent.status == FAILED).order_by(WebhookEvent.id)
            .limit(limit)
        )
    )
    if ids:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(ids))
            .values(status=RECEIVED, next_attempt_at=0, last_error=None, attempts=0)
        )
    return ids


def waiting_count(session: Session, older_than: int = 0) -> int:
    """Rows due and still ``received`` that arrived more than ``older_than`` seconds ago."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(WebhookEvent)
            .where(
                WebhookEvent.status == RECEIVED,
                WebhookEvent.next_attempt_at <= now_ts(),
                WebhookEvent.received_at <= now_ts() - older_than,
            )
        )
        or 0
    )


def counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
    ).all()
    return {status: int(n) for status, n in rows}


def list_events(
    session: Session, status: str | None, limit: int, starting_after: str | None
) -> tuple[list[WebhookEvent], bool]:
    stmt = select(WebhookEvent).order_by(WebhookEvent.id.desc())
    if status:
        stmt = stmt.where(WebhookEvent.status == status)
    if starting_after:
        anchor = session.scalar(
            select(WebhookEvent.id).where(WebhookEvent.stripe_id == starting_after)
        )
        if anchor is None:
            raise NotFound("No such event to start after.", param="starting_after")
        stmt = stmt.where(WebhookEvent.id < anchor)
    rows = list(session.scalars(stmt.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def get_by_stripe_id(session: Session, stripe_id: str) -> WebhookEvent:
    row = session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_id == stripe_id))
    if row is None:
        raise NotFound("No such webhook event.", code="webhook_event_not_found")
    return row


def cursor(session: Session, name: str) -> WebhookCursor:
    row = session.get(WebhookCursor, name)
    if row is None:
        row = WebhookCursor(name=name, created_gte=0, updated=now_ts())
        session.add(row)
        session.flush()
    return row
