"""Test fixtures shared by every layer.

The database is SQLite by default, PostgreSQL when ``CREATORPAY_TEST_DATABASE_URL`` is set (the
session makes its own throw-away database there, so parallel runs never collide). The broker is
kombu's SQLite transport by default, ``CREATORPAY_TEST_BROKER_URL`` (Redis in CI) otherwise.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from payments.config import Config, load_config
from payments.db import db

# Fixture modules import each other; have pytest rewrite their asserts whichever loads first.
pytest.register_assert_rewrite("tests.fixtures")

pytest_plugins = [
    f"tests.fixtures.{path.stem}"
    for path in sorted((Path(__file__).parent / "fixtures").glob("*.py"))
    if path.stem != "__init__"
]

TEST_DB_URL = os.environ.get("CREATORPAY_TEST_DATABASE_URL")
TEST_BROKER_URL = os.environ.get("CREATORPAY_TEST_BROKER_URL")
ON_POSTGRES = bool(TEST_DB_URL)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ledger_drift: breaks the ledger on purpose (no verify after the test)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ON_POSTGRES:
        return
    # PostgreSQL-only behaviour (row locks, triggers, pg_terminate_backend) runs in that leg.
    kept, left_out = [], []
    for item in items:
        (left_out if item.get_closest_marker("postgres") else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
        config._creatorpay_left_out = len(left_out)  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if LEDGER_CHECKS["tests"]:
        terminalreporter.write_line(
            f"ledger verify and trial balance after each of {LEDGER_CHECKS['tests']} tests that "
            f"committed: {LEDGER_CHECKS['journals']} journals in "
            f"{len(LEDGER_CHECKS['currencies'])} currencies checked"  # type: ignore[arg-type]
        )
    left_out = getattr(config, "_creatorpay_left_out", 0)
    if left_out:
        terminalreporter.write_line(
            f"SQLite leg: left out {left_out} PostgreSQL-only tests "
            "(set CREATORPAY_TEST_DATABASE_URL to run them)"
        )


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="creatorpay-test-") as d:
        yield Path(d)


def _create_pg_database(admin_url: str) -> tuple[str, str]:
    name = f"creatorpay_test_{secrets.token_hex(4)}"
    url = make_url(admin_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False), name


def _drop_pg_database(admin_url: str, name: str) -> None:
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database="postgres")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_root: Path) -> Iterator[str]:
    if TEST_DB_URL:
        url, name = _create_pg_database(TEST_DB_URL)
        yield url
        db.dispose()
        _drop_pg_database(TEST_DB_URL, name)
    else:
        yield f"sqlite:///{tmp_root / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def broker_url(tmp_root: Path) -> str:
    return TEST_BROKER_URL or f"sqla+sqlite:///{tmp_root / 'broker.sqlite3'}"


@pytest.fixture(scope="session")
def migrated(database_url: str) -> str:
    """``alembic upgrade head`` once per session: this also tests the migrations."""
    from payments.migrate import upgrade

    upgrade(database_url)
    db.configure(database_url)
    return database_url


@pytest.fixture(scope="session")
def base_config(migrated: str, broker_url: str, tmp_root: Path) -> Config:
    env = {
        "CREATORPAY_DATABASE_URL": migrated,
        "CREATORPAY_BROKER_URL": broker_url,
        "CREATORPAY_VAR_DIR": str(tmp_root / "var"),
        "CREATORPAY_STRIPE_WEBHOOK_SECRET": "whsec_test_" + secrets.token_hex(8),
        # The suite signs up hundreds of accounts from one IP; tests/integration/test_limits.py
        # turns the limits on with their own counters.
        "CREATORPAY_RATE_LIMITS": "off",
        # Likewise the tip velocity rules (tests/integration/tips/test_abuse.py sets its own).
        "CREATORPAY_TIP_VELOCITY_PER_FAN": "off",
        "CREATORPAY_TIP_VELOCITY_PER_CARD": "off",
    }
    return load_config(env, testing=True)


@pytest.fixture
def db_session(base_config: Config) -> Iterator[Any]:
    """A session inside an outer transaction that is rolled back after the test.

    Every session the code under test opens (``db.session()``) joins the same connection
    through a savepoint, so ``commit()`` works and still leaves nothing behind.
    """
    connection = db.engine.connect()
    outer = connection.begin()
    db.bind_to(connection)
    session = db.session()
    try:
        yield session
    finally:
        session.close()
        db.bind_to(None)
        outer.rollback()
        connection.close()


@pytest.fixture
def app(base_config: Config, db_session: Any) -> Any:
    from payments import create_app

    return create_app(base_config)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def truncate_all() -> None:
    """Empty every table (tests whose commits other processes must see)."""
    from payments.domains import metadata as domain_metadata

    metadata = domain_metadata()

    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(text("SET session_replication_role = replica"))
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            conn.execute(text("SET session_replication_role = DEFAULT"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


LEDGER_CHECKS = {"tests": 0, "journals": 0, "currencies": set()}


def check_books(request: pytest.FixtureRequest) -> None:
    """``ledger verify`` and the trial balance over what a test committed, before it is
    emptied: every test that really moves money leaves clean books, or fails. A test that
    breaks the books on purpose says so with ``@pytest.mark.ledger_drift``."""
    if request.node.get_closest_marker("ledger_drift"):
        return
    from payments.db import session_scope
    from payments.ledger import service as ledger

    with session_scope() as session:
        report = ledger.verify(session)
        totals = ledger.trial_balance(session)["totals"]
    LEDGER_CHECKS["tests"] += 1
    LEDGER_CHECKS["journals"] += report.journals
    LEDGER_CHECKS["currencies"] |= {t["currency"] for t in totals}  # type: ignore[operator]
    assert report.ok, f"{request.node.nodeid} left the ledger inconsistent: {report}"
    assert all(t["total"] == 0 for t in totals), (
        f"{request.node.nodeid} left a trial balance that is not zero: {totals}")


@pytest.fixture
def committed_db(base_config: Config, request: pytest.FixtureRequest) -> Iterator[Config]:
    """Real commits, visible to workers and servers in other threads or processes."""
    db.bind_to(None)
    yield base_config
    try:
        check_books(request)
    finally:
        truncate_all()
