"""The ``creatorpay`` command line against the test database."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from payments.cli import cli
from payments.config import Config


def test_admin_create_key_prints_a_working_key_once(committed_db: Config, monkeypatch: Any) -> None:
    from payments import create_app

    monkeypatch.setenv("CREATORPAY_DATABASE_URL", committed_db.database_url)
    result = CliRunner().invoke(cli, ["admin", "create-key", "--label", "ops"])
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert key.startswith("ak_") and len(key) > 40
    client = create_app(committed_db).test_client()
    r = client.get("/v1/admin/trial-balance", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json["totals"] == []
    revoked = CliRunner().invoke(cli, ["admin", "revoke-key", key])
    assert revoked.exit_code == 0, revoked.output
    r = client.get("/v1/admin/trial-balance", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401 and r.json["error"]["code"] == "api_key_revoked"
    missing = CliRunner().invoke(cli, ["admin", "revoke-key", key[:-2] + "zz"])
    assert missing.exit_code != 0 and "no such key" in missing.output


def test_readyz_is_503_when_the_broker_is_down(base_config: Config, db_session: Any) -> None:
    from payments import create_app

    down = base_config.with_overrides(broker_url="redis://127.0.0.1:1/0")
    r = create_app(down).test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["checks"]["database"] == "ok"
    assert r.json["checks"]["broker"].startswith("error")


def test_admin_rotate_key_swaps_the_key_in_one_step(committed_db: Config, monkeypatch: Any) -> None:
    from payments import create_app

    monkeypatch.setenv("CREATORPAY_DATABASE_URL", committed_db.database_url)
    old = CliRunner().invoke(cli, ["admin", "create-key", "--label", "ops"]).output.strip()
    # The key is read from the prompt, never from the command line (shell history).
    rotated = CliRunner().invoke(cli, ["admin", "rotate-key"], input=old + "\n")
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip().splitlines()[-1]
    assert new.startswith("ak_") and new != old
    assert old not in rotated.output.replace("current admin key: ", "")  # not echoed back
    client = create_app(committed_db).test_client()

    def status(key: str) -> int:
        return int(client.get("/v1/admin/trial-balance",
                              headers={"Authorization": f"Bearer {key}"}).status_code)

    assert status(new) == 200 and status(old) == 401
    again = CliRunner().invoke(cli, ["admin", "rotate-key", "--key", old])
    assert again.exit_code != 0 and "no such active admin key" in again.output
    # Only admin keys rotate here.
    from payments.auth import issue_key
    from payments.db import session_scope

    with session_scope() as s:
        fan_key = issue_key(s, "fan", None)
    refused = CliRunner().invoke(cli, ["admin", "rotate-key", "--key", fan_key])
    assert refused.exit_code != 0 and status(new) == 200


def test_ledger_trial_balance_command(committed_db: Config, monkeypatch: Any) -> None:
    from payments.db import session_scope
    from payments.ledger import service as ledger

    monkeypatch.setenv("CREATORPAY_DATABASE_URL", committed_db.database_url)
    with session_scope() as s:
        stripe = ledger.platform_account("stripe_balance", "usd")
        pending = ledger.creator_account(1, "pending", "usd")
        from payments.accounts.models import Creator

        s.add(Creator(id=1, handle="tb_creator", display_name="TB", email="tb@example.com",
                      kind="influencer", country="US", default_currency="usd"))
        s.flush()
        ledger.post(s, "cli-test:1", "tip", [ledger.debit(stripe, 1234), ledger.credit(pending, 1234)],
                    source=("tip", "tip_cli"), effective_at=1)
    from payments.cli import _load_domain_commands

    _load_domain_commands()  # what main() does before running cli
    result = CliRunner().invoke(cli, ["ledger", "trial-balance"])
    assert result.exit_code == 0, result.output
    assert "trial balance: OK: usd 0" in result.output
    assert "1234" in result.output and "-1234" in result.output
