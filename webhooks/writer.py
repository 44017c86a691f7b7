"""Group commit for the webhook endpoint: concurrent deliveries share one INSERT and one COMMIT.

Each request still answers only after its own row is committed. The first request to arrive
while no write is in flight becomes the *leader*: it takes every event waiting at that
moment (its own included), stores them with one multi-row ``INSERT ... ON CONFLICT DO
NOTHING`` in one transaction, hands each waiting request its answer, and, if more events
arrived meanwhile, passes the lead to one of them. With one request at a time this is exactly
one insert and one commit per event, as before; under load a process pays one round trip of
each per batch instead of per event.

If the batch fails as a whole (the database is away), every request in it gets the error
(the endpoint answers 503, Stripe retries). If a batch of several is refused for one bad
event, each of its events is stored on its own so only that one fails.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from payments.db import db, session_scope
from webhooks import inbox

MAX_BATCH = 200


class _Item:
    __slots__ = ("done", "error", "event", "lead", "raw", "result")

    def __init__(self, event: dict[str, Any], raw: bytes | None) -> None:
        self.event = event
        self.raw = raw
        # A held lock as a one-shot signal: the waiter blocks in acquire() until the writer
        # releases it. Each item is released exactly once, by whoever wrote its batch or
        # passed it the lead. (An Event costs a Condition and a fresh lock per wait: on this
        # path, per delivery, that showed in the profile.)
        self.done = threading.Lock()
        self.done.acquire()
        self.lead = False
        self.result: int | None = None
        self.error: BaseException | None = None


class InboxWriter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Item] = []
        self._writing = False
        self.batches = 0

    def store(self, event: dict[str, Any], raw: bytes | None = None) -> int | None:
        """Store and commit ``event`` (parsed from ``raw``); its new row id, or None if it
        was already stored."""
        item = _Item(event, raw)
        with self._lock:
            self._waiting.append(item)
            lead = not self._writing
            self._writing = True
        if not lead:
            item.done.acquire()
            if not item.lead:
                return self._answer(item)
        self._write()
        return self._answer(item)

    @staticmethod
    def _answer(item: _Item) -> int | None:
        if item.error is not None:
            raise item.error
        return item.result

    def _write(self) -> None:
        """Write one batch (the leader's own event is in it), then pass the lead on."""
        with self._lock:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        try:
            _store(batch)
        finally:
            with self._lock:
                nxt = self._waiting[0] if self._waiting else None
                self._writing = nxt is not None
            for item in batch:
                item.done.release()
            if nxt is not None:
                nxt.lead = True
                nxt.done.release()
            self.batches += 1


class _Dedicated:
    """One connection per process for the writer, kept between batches.

    Batches are written one at a time per process (the lead passes on), so one connection
    serves them all and no batch pays a pool checkout and its pre-ping round trip (measured:
    a third of a lone delivery's CPU). A connection the database dropped raises once (that
    batch answers 503 and Stripe retries), is discarded, and the next batch reconnects.
    """

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.pid: int | None = None
        self.engine: Engine | None = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        if db.is_bound:  # tests: everything joins the test's own transaction
            with session_scope() as session:
                yield session
            return
        engine = db.engine
        if (self.conn is None or self.pid != os.getpid() or self.engine is not engine
                or self.conn.invalidated):
            if self.conn is not None and self.pid == os.getpid():
                self.conn.close()
            self.conn = None
            self.conn = engine.connect()
            self.pid, self.engine = os.getpid(), engine
        session = Session(bind=self.conn, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            if self.conn.invalidated:
                self.conn.close()
                self.conn = None
            raise
        finally:
            session.close()


class _PgAutocommit:
    """PostgreSQL: the writer's own driver connection, in autocommit, without a Session.

    A batch is one INSERT, so it is its own transaction: autocommit saves the COMMIT round
    trip, and skipping the ORM's session and transaction bookkeeping saves more (measured
    together: 346 -> 190 us of CPU for a batch of one). Driver errors are raised as
    SQLAlchemy's, so the endpoint answers them as it answers any database error.
    """

    def __init__(self) -> None:
        self.raw: Any = None
        self.pid: int | None = None
        self.engine: Engine | None = None

    def store(self, events: list[dict[str, Any]], raws: list[bytes | None]) -> dict[str, int]:
        import psycopg

        engine = db.engine
        try:
            if self.raw is None or self.pid != os.getpid() or self.engine is not engine:
                if self.raw is not None and self.pid == os.getpid():
                    self.raw.invalidate()  # another engine now (never a parent's socket)
                self.raw = None
                raw = engine.raw_connection()
                dconn: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
                dconn.rollback()  # idle, whatever the pool's ping left open
                dconn.autocommit = True
                self.raw, self.pid, self.engine = raw, os.getpid(), engine
            return inbox.store_events_pg(self.raw.driver_connection, events, raws=raws)
        except psycopg.Error as exc:
            broken = self.raw is None or bool(self.raw.driver_connection.closed
                                              or isinstance(exc, psycopg.OperationalError))
            if broken and self.raw is not None:
                self.raw.invalidate()
            if broken:
                self.raw = None
            raise DBAPIError.instance(
                "INSERT INTO webhook_events ...", None, exc, psycopg.Error,
                connection_invalidated=broken,
            ) from exc


_dedicated = _Dedicated()
_pg = _PgAutocommit()


def _store(batch: Sequence[_Item]) -> None:
    events = [i.event for i in batch]
    raws = [i.raw for i in batch]
    try:
        if not db.is_bound and db.engine.dialect.name == "postgresql":
            ids = _pg.store(events, raws)
        else:
            with _dedicated.session() as session:
                ids = inbox.store_events_returning(session, events, raws=raws)
    except DBAPIError as exc:
        if len(batch) == 1 or exc.connection_invalidated or _unavailable(exc):
            for item in batch:
                item.error = exc
            return
        for item in batch:  # one bad event must not refuse the others
            _store([item])
        return
    except BaseException as exc:  # noqa: BLE001 - the requests waiting on us must hear of it
        for item in batch:
            item.error = exc
        return
    claimed: set[str] = set()
    for item in batch:
        sid = item.event["id"]
        # The same event twice in one batch: the first delivery stored it, the second did not.
        item.result = ids.get(sid) if sid not in claimed else None
        claimed.add(sid)


def _unavailable(exc: DBAPIError) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)


writer = InboxWriter()
