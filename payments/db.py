"""Database plumbing: the declarative base, one engine per process, sessions.

The engine is created lazily and re-created after ``fork()`` (gunicorn and Celery prefork
workers inherit the parent's memory, but a connection pool must never cross a fork).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    Integer,
    MetaData,
    String,
    Text,
    any_,
    create_engine,
    event,
    literal,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.expression import Insert, Select
from sqlalchemy.sql.schema import Table

if TYPE_CHECKING:
    from flask import Flask

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of one failing with "database is locked" when it upgrades a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    # JSON columns (webhook payloads) are read on every event a worker applies: orjson parses
    # them several times faster than the standard library.
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 1800)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


class Database:
    """Holds the URL; hands out an engine and sessions for the current process."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.pre_ping = True
        self._engine: Engine | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._factory: sessionmaker[Session] | None = None
        # Tests bind every session to one connection inside an outer transaction.
        self._bound: Any = None

    def configure(self, url: str, *, pre_ping: bool = True) -> None:
        """Use ``url``. ``pre_ping`` tests each connection on checkout: the web tier keeps it
        (a request never fails on a connection the database dropped); workers turn it off,
        since it costs a round trip per transaction and a task that meets a dead connection
        is retried anyway (SQLAlchemy then invalidates the whole pool)."""
        if url != self.url or pre_ping != self.pre_ping:
            self.dispose()
            self.url = url
            self.pre_ping = pre_ping

    @property
    def engine(self) -> Engine:
        if self.url is None:
            raise RuntimeError("database not configured: call db.configure(url) first")
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    if self._engine is not None:
                        # Inherited across fork: drop the parent's pool without closing its sockets.
                        self._engine.dispose(close=False)
                    self._engine = make_engine(self.url, pool_pre_ping=self.pre_ping)
                    self._factory = sessionmaker(self._engine, expire_on_commit=False)
                    self._pid = os.getpid()
        return self._engine

    def bind_to(self, connection: Any) -> None:
        """Make every session join ``connection`` through a savepoint (tests), or stop."""
        self._bound = connection

    @property
    def is_bound(self) -> bool:
        return self._bound is not None

    def session(self) -> Session:
        if self._bound is not None:
            return Session(
                bind=self._bound,
                join_transaction_mode="create_savepoint",
                expire_on_commit=False,
            )
        self.engine  # noqa: B018 - ensures the factory exists for this process
        assert self._factory is not None
        return self._factory()

    def dispose(self) -> None:
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None
        self._factory = None
        self._pid = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


db = Database()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work outside a request (tasks, CLI): commit on success, roll back on error."""
    session = db.session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SelectT = TypeVar("SelectT", bound=Select[Any])


def for_update(session: Session, stmt: SelectT, *, skip_locked: bool = False) -> SelectT:
    """``SELECT ... FOR UPDATE`` on PostgreSQL. SQLite needs none: its writers are already
    serialised by ``BEGIN IMMEDIATE``."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt


def one_of(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``, one parameter.

    The SQL text is then the same whatever the number of values, so the driver and the
    server parse it once (an IN list of a batch's ids is new text for every batch size, and
    its parsing showed in the workers' profiles).
    """
    if session.get_bind().dialect.name == "postgresql":
        # text[] for strings: a varchar(n)[] cast would cut longer values to n and match.
        element = Text() if isinstance(column.type, String) else column.type
        return column == any_(literal(list(values), postgresql.ARRAY(element)))
    return column.in_(list(values))


def insert_ignoring_conflicts(
    session: Session, table: Table | Any, index_elements: Sequence[str]
) -> Insert:
    """``INSERT ... ON CONFLICT (cols) DO NOTHING`` for the session's dialect."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    raise RuntimeError(f"unsupported database dialect {name!r}")


def request_session() -> Session:
    """The session for the current Flask request, closed at teardown (see ``init_app``)."""
    from flask import g

    session: Session | None = g.get("db_session")
    if session is None:
        session = db.session()
        g.db_session = session
    return session


def init_app(app: Flask) -> None:
    from flask import g

    db.configure(app.config["CREATORPAY"].database_url)

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            session.close()
