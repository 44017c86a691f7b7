"""``Idempotency-Key`` for POSTs that move money.

Scoped to the principal and the endpoint. The first request with a key claims it (a row with
no answer yet) in its own short transaction; the same key with the same body then gets the
first answer, status and body alike; with a different body ``409 idempotency_key_reused``.
Concurrent requests with one key wait for the first to finish, then replay its answer, so 50
simultaneous retries make one tip and one PaymentIntent. Answers with status >= 500 are not
kept: the key is released and a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, request
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from payments.accounts.models import IdempotencyRecord
from payments.auth import current_principal
from payments.clock import now_ts
from payments.db import db, insert_ignoring_conflicts, request_session
from payments.errors import Conflict, InvalidRequest

HEADER = "Idempotency-Key"
WAIT_SECONDS = 30.0
# A claim this old with no answer belongs to a process that died: a retry may take it over.
ABANDONED_AFTER = 300

F = TypeVar("F", bound=Callable[..., Any])


def _request_hash() -> str:
    raw = request.get_data(cache=True) or b""
    try:
        canonical = json.dumps(json.loads(raw or b"null"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = raw.decode("utf-8", "replace")
    return hashlib.sha256(f"{request.path}\n{canonical}".encode()).hexdigest()


def _scope(email: str | None) -> str:
    principal = current_principal(optional=True)
    if principal is not None:
        return principal.scope
    # A guest has no key; their email is the nearest thing to an identity.
    return f"guest:{(email or '').strip().lower()}"


def _claim(scope: str, endpoint: str, key: str, digest: str) -> IdempotencyRecord | None:
    """Insert our claim; None if we own the key now, else the existing record."""
    with db.session() as session:
        table = IdempotencyRecord.__table__
        stmt = insert_ignoring_conflicts(session, table, ["scope", "endpoint", "key"]).values(
            scope=scope, endpoint=endpoint, key=key, request_hash=digest, created=now_ts()
        ).returning(table.c.id)
        new_id = session.execute(stmt).scalar_one_or_none()
        if new_id is not None:
            session.commit()
            return None
        existing = session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.scope == scope,
                IdempotencyRecord.endpoint == endpoint,
                IdempotencyRecord.key == key,
            )
        )
        session.commit()
        return existing


def _take_over_abandoned(record: IdempotencyRecord) -> bool:
    with db.session() as session:
        taken = session.execute(  # type: ignore[attr-defined]
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record.id, IdempotencyRecord.status_code.is_(None),
                   IdempotencyRecord.created <= now_ts() - ABANDONED_AFTER)
            .values(created=now_ts())
        ).rowcount
        session.commit()
        return bool(taken)


def _finish(scope: str, endpoint: str, key: str, status: int, body: Any) -> None:
    with db.session() as session:
        where = (IdempotencyRecord.scope == scope, IdempotencyRecord.endpoint == endpoint,
                 IdempotencyRecord.key == key)
        if status >= 500:
            session.execute(delete(IdempotencyRecord).where(*where))
        else:
            session.execute(
                update(IdempotencyRecord).where(*where).values(status_code=status,
                                                               response_body=body)
            )
        session.commit()


def _replay(record: IdempotencyRecord) -> Response:
    resp = Response(json.dumps(record.response_body), status=int(record.status_code or 200),
                    mimetype="application/json")
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


def _wait_for_answer(record_id: int) -> IdempotencyRecord | None:
    deadline = time.monotonic() + WAIT_SECONDS
    delay = 0.02
    while time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
        with db.session() as session:
            found = session.get(IdempotencyRecord, record_id)
            if found is None or found.status_code is not None:
                return found
    return None


def idempotent(endpoint: str) -> Callable[[F], F]:
    """Honour ``Idempotency-Key`` on a view: under ``@blp.arguments``, above ``@blp.response``."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = request.headers.get(HEADER)
            if key is None:
                return fn(*args, **kwargs)
            if not 1 <= len(key) <= 255:
                raise InvalidRequest("Idempotency-Key must be 1-255 characters.",
                                     code="invalid_idempotency_key", param=HEADER)
            body = request.get_json(silent=True) or {}
            scope = _scope(body.get("email") if isinstance(body, dict) else None)
            digest = _request_hash()
            # The auth lookup left the request's session in a transaction holding a pooled
            # connection (on SQLite, the write lock: BEGIN IMMEDIATE). Claims and polls use
            # their own short sessions, so end it first: otherwise the claim waits on our own
            # lock, and concurrent retries each hold a connection while waiting for a second.
            request_session().commit()
            for _attempt in range(3):
                try:
                    existing = _claim(scope, endpoint, key, digest)
                except IntegrityError:
                    continue
                if existing is None:
                    break
                if existing.request_hash != digest:
                    raise Conflict(
                        "This Idempotency-Key was used with a different request body.",
                        code="idempotency_key_reused", param=HEADER,
                    )
                if existing.status_code is not None:
                    return _replay(existing)
                if _take_over_abandoned(existing):
                    break
                answered = _wait_for_answer(existing.id)
                if answered is not None and answered.status_code is not None:
                    return _replay(answered)
                if answered is None:
                    continue  # released after a 5xx: try to claim it ourselves
                raise Conflict("A request with this Idempotency-Key is still in progress.",
                               code="idempotency_request_in_progress", param=HEADER)
            else:
                raise Conflict("A request with this Idempotency-Key is still in progress.",
                               code="idempotency_request_in_progress", param=HEADER)
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                from payments.errors import PaymentsError

                request_session().rollback()  # as teardown would; frees its connection
                if isinstance(exc, PaymentsError) and exc.status_code < 500:
                    _finish(scope, endpoint, key, exc.status_code, exc.to_dict())
                else:
                    _finish(scope, endpoint, key, 500, None)
                raise
            # The view has committed its work; what its session holds now is a read
            # transaction (a connection, on SQLite the write lock) that _finish must not wait on.
            request_session().rollback()
            # ``@blp.response`` sits below us, so ``result`` is the serialised Response.
            response = result if isinstance(result, Response) else None
            if response is None:
                _finish(scope, endpoint, key, 500, None)
                raise TypeError("@idempotent must be placed above @blp.response")
            _finish(scope, endpoint, key, response.status_code, response.get_json(silent=True))
            return response

        return cast(F, wrapper)

    return decorator
