"""`creatorpay ledger verify` and the beat tasks ledger.mature / ledger.checkpoint."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from payments import clock
from payments.config import Config
from payments.db import session_scope
from payments.ledger import service as ledger
from payments.ledger.service import creator_account, credit, debit, platform_account


def seed(at: int) -> None:
    with session_scope() as session:
        ledger.post(session, "cli:1", "tip", [
            debit(platform_account("stripe_balance", "usd"), 900),
            credit(creator_account(5, "pending", "usd"), 900)], effective_at=at)


@pytest.fixture
def env(committed_db: Config, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("CREATORPAY_DATABASE_URL", committed_db.database_url)
    return committed_db


@pytest.mark.ledger_drift  # it breaks the books on purpose: the after-test check is off
def test_verify_cli_ok_then_drift(env: Config) -> None:
    from payments.ledger.cli import ledger as group

    seed(1_000)
    result = CliRunner().invoke(group, ["verify"])
    assert result.exit_code == 0, result.output
    assert "ledger verify: OK" in result.output
    with session_scope() as session:
        session.execute(text("UPDATE ledger_accounts SET balance = balance + 1 "
                             "WHERE owner_kind = 'creator'"))
    result = CliRunner().invoke(group, ["verify"])
    assert result.exit_code == 1
    assert "DRIFT" in result.output and "drift" in result.output


def test_cli_is_registered() -> None:
    from payments.cli import _load_domain_commands, cli

    _load_domain_commands()
    assert "ledger" in cli.commands
    assert {"verify", "checkpoint", "mature"} <= set(cli.commands["ledger"].commands)  # type: ignore[attr-defined]


def test_tasks_mature_and_checkpoint(env: Config) -> None:
    from tasks import app
    from tasks import ledger as ledger_tasks

    assert {"ledger.mature", "ledger.checkpoint"} <= set(app.tasks)
    seed(1_000)
    with clock.freeze(1_000 + 6 * 86_400):
        assert ledger_tasks.mature() == 0
    with clock.freeze(1_000 + 7 * 86_400):
        assert ledger_tasks.mature() == 1
        assert ledger_tasks.mature() == 0
    assert ledger_tasks.checkpoint() >= 1
    with session_scope() as session:
        [bal] = ledger.creator_balances(session, 5)
        assert (bal["pending"], bal["available"]) == (0, 900)
        row: Any = session.execute(text(
            "SELECT balance FROM ledger_accounts WHERE purpose = 'stripe_balance'")).scalar_one()
        assert row == 900
        assert ledger.verify(session).ok
