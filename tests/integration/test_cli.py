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
