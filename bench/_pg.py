"""PostgreSQL plumbing shared by the benchmarks: URLs and throw-away databases."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy.engine import make_url


def sa_url(url: str) -> str:
    """The URL for SQLAlchemy (psycopg 3 driver)."""
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(
        hide_password=False)


def pg_url(url: str) -> str:
    """The URL for psycopg itself."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def admin_conn(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(pg_url(str(make_url(url).set(database="postgres"))), autocommit=True)


def create_db(url: str) -> None:
    """Create the database ``url`` names, dropping any leftover of an earlier run."""
    name = make_url(url).database
    with admin_conn(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_db(url: str) -> None:
    name = make_url(url).database
    with admin_conn(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
