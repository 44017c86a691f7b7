"""Alembic environment: the URL comes from the one config loader (or the caller)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from payments.config import load_config
from payments.db import make_engine
from payments.domains import metadata as domain_metadata

config = context.config


def run_migrations() -> None:
    url = config.attributes.get("database_url") or load_config().database_url
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=domain_metadata(),
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
