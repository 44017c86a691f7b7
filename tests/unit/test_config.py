from __future__ import annotations

import subprocess
import sys

import pytest

from payments.config import ConfigError, load_config


def test_defaults_are_embedded_sqlite_and_sqlite_broker() -> None:
    config = load_config({})
    assert config.database_url.startswith("sqlite:///") and config.database_url.endswith(
        "creatorpay.sqlite3")
    assert config.broker_url.startswith("sqla+sqlite:///")
    assert config.port == 5000 and config.sandbox_port == 12111
    assert config.clock_url is None


def test_postgres_urls_get_the_psycopg3_driver() -> None:
    config = load_config({"CREATORPAY_DATABASE_URL": "postgres://u@h/db"})
    assert config.database_url == "postgresql+psycopg://u@h/db"


def test_a_loopback_stripe_is_the_sandbox_and_its_clock_is_ours() -> None:
    config = load_config({"CREATORPAY_STRIPE_API_BASE": "http://127.0.0.1:12111"})
    assert config.clock_url == "http://127.0.0.1:12111/_sandbox/clock"
    remote = load_config({"CREATORPAY_STRIPE_API_BASE": "https://api.stripe.com"})
    assert remote.clock_url is None


def test_webhook_secrets_rotate() -> None:
    config = load_config({"CREATORPAY_STRIPE_WEBHOOK_SECRET": "whsec_new, whsec_old"})
    assert config.stripe_webhook_secrets == ("whsec_new", "whsec_old")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("PORT", "abc", "not a whole number"),
        ("PORT", "70000", "out of range"),
        ("DATABASE_URL", "mysql://x", "must be a URL"),
        ("BROKER_URL", "kafka://x", "must be a URL"),
        ("STRIPE_SECRET_KEY", "pk_test_123", "sk_test_"),
        ("STRIPE_WEBHOOK_SECRET", "nope", "whsec_"),
        ("PLATFORM_FEE_RATE", "ten", "not a decimal"),
        ("PLATFORM_FEE_RATE", "1.5", "must be in"),
        ("HOLD_DAYS", "-1", "out of range"),
    ],
)
def test_bad_values_fail_with_one_clear_line(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({f"CREATORPAY_{name}": value})
    assert f"CREATORPAY_{name}" in str(err.value) and words in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_prints_the_line_not_a_traceback() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "payments.cli", "db", "upgrade"],
        env={"CREATORPAY_PORT": "nope", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "creatorpay: configuration error: CREATORPAY_PORT='nope' is not a whole number")
