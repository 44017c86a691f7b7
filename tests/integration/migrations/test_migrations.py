"""Migrations build the models' schema from empty, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from payments.db import db
from payments.domains import metadata as domain_metadata

metadata = domain_metadata()


def test_upgrade_from_empty_matches_the_models(migrated: str) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        tables = set(inspect(conn).get_table_names())
    assert diff == [], diff
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert "alembic_version" in tables


def test_downgrade_to_base_and_back(tmp_path: Any) -> None:
    """Every migration's downgrade runs, on a throw-away database of the leg's kind."""
    from payments.db import make_engine
    from payments.migrate import downgrade, upgrade
    from tests.conftest import TEST_DB_URL, _create_pg_database, _drop_pg_database

    name = None
    if TEST_DB_URL:
        url, name = _create_pg_database(TEST_DB_URL)
    else:
        url = f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"
    try:
        upgrade(url)
        downgrade(url, "base")
        engine = make_engine(url)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        upgrade(url)
        with engine.connect() as conn:
            assert {t.name for t in metadata.sorted_tables} <= set(inspect(conn).get_table_names())
        engine.dispose()
    finally:
        if name is not None and TEST_DB_URL:
            _drop_pg_database(TEST_DB_URL, name)
