"""Rendering details: the SQL base62 of the COPY export equals payments.ids; money text."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from payments.db import db
from payments.ids import _b62
from payments.statements.render import _b62_sql, money


@pytest.mark.postgres
def test_sql_base62_is_the_public_id_encoding(db_session: object) -> None:
    with db.engine.connect() as conn:
        for value in (0, 1, 61, 62, 3843, 3844, 10**6, 2**40, 2**62, 2**63 - 1):
            sql = _b62_sql(f"CAST({value} AS BIGINT)", value)
            assert conn.execute(text(f"SELECT {sql}")).scalar_one() == _b62(value)


def test_money_uses_the_currency_exponent() -> None:
    assert money(123456, "usd") == "1,234.56 USD"
    assert money(-5, "usd") == "-0.05 USD"
    assert money(2000, "jpy") == "2,000 JPY"
    assert money(0, "krw") == "0 KRW"
