from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy.orm import Session

from payments.accounts.service import create_creator

_handles = itertools.count(1)


def make_creator(session: Session, hold_days: int | None = None, currency: str = "usd") -> int:
    n = next(_handles)
    creator, _key = create_creator(
        session,
        {
            "handle": f"ledger_{n}_{id(session) % 10000}",
            "display_name": f"Creator {n}",
            "email": f"c{n}@example.com",
            "kind": "influencer",
            "country": "US",
            "default_currency": currency,
        },
    )
    creator.hold_days = hold_days
    session.flush()
    return creator.id


@pytest.fixture
def creator_id(db_session: Session) -> int:
    return make_creator(db_session)


@pytest.fixture
def new_creator(db_session: Session) -> Any:
    return lambda **kw: make_creator(db_session, **kw)
