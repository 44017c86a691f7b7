"""One configuration loader for the web app, the Celery worker and the CLI.

Every setting comes from a ``CREATORPAY_*`` environment variable with an embedded default, so
a fresh checkout runs with no services (SQLite database, SQLite-backed broker). A bad value
raises ``ConfigError`` with one line that names the variable; entry points print that line
and exit instead of showing a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PREFIX = "CREATORPAY_"


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message is one line for people."""


@dataclass(frozen=True)
class Config:
    # Secrets (passwords in URLs, keys) are left out of repr(): a config in a log or a
    # traceback shows no credential.
    database_url: str = field(repr=False)
    broker_url: str = field(repr=False)
    port: int = 5000
    sandbox_port: int = 12111
    # The sandbox accepts any sk_test_ key; this one is no secret.
    stripe_secret_key: str = field(default="sk_test_creatorpay_sandbox", repr=False)  # noqa: S105
    stripe_api_base: str | None = None
    # More than one secret verifies webhooks while an endpoint secret is being rotated.
    stripe_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    # Platform fee taken from tips, subscriptions and deals (a rate; rounding via allocate()).
    platform_fee_rate: Decimal = Decimal("0.10")
    hold_days: int = 7
    max_tip_amount: int = 1_000_000
    # Payouts: the smallest automatic payout per currency (minor units), and the reserve: a
    # share of each credit held for reserve_days against refunds and disputes.
    payout_minimums: Mapping[str, int] = field(default_factory=dict)
    reserve_rate: Decimal = Decimal("0")
    reserve_days: int = 30
    # Tip velocity (abuse rules): at most N tips per window (seconds) per fan (or guest email)
    # and per card; None turns a rule off.
    tip_velocity_per_fan: tuple[int, int] | None = (30, 3600)
    tip_velocity_per_card: tuple[int, int] | None = (30, 3600)
    # Who bears Stripe's fee on a deal's funding payment: "platform" (its processor_fees
    # expense) or "creator" (taken from each milestone's release, pro rata).
    deal_fee_bearer: str = "platform"
    var_dir: Path = field(default_factory=lambda: Path("var"))
    # Read the business clock from the sandbox (``GET /_sandbox/clock``) when it is the API.
    clock_url: str | None = None
    # Rate limits (payments/limits.py): on unless turned off; counters in Redis or memory.
    rate_limits: bool = True
    rate_limit_storage: str | None = None
    # Reverse proxies in front of the web tier whose X-Forwarded-For to trust.
    proxy_hops: int = 0
    # The server's own secret: signs dashboard sign-in links and session cookies (never an
    # API key). Unset: one is made once and kept under var_dir (payments/dashboard/tokens.py).
    secret_key: str | None = field(default=None, repr=False)
    # Dashboard: how long a sign-in link stays valid, and the session it opens (seconds).
    dashboard_link_ttl: int = 600
    dashboard_session_ttl: int = 3600
    # Logs (payments/logs.py): "json" (one object a line) or "text"; the root level.
    log_format: str = "json"
    log_level: str = "INFO"
    # GET /metrics answers only with ``Authorization: Bearer <token>`` when this is set.
    metrics_token: str | None = field(default=None, repr=False)
    testing: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stripe_webhook_secret(self) -> str | None:
        return self.stripe_webhook_secrets[0] if self.stripe_webhook_secrets else None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: Any) -> Config:
        return replace(self, **changes)


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{PREFIX}{name}={value} is out of range ({lo}..{hi})")
    return value


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = env.get(PREFIX + name) or default
    scheme = urlparse(raw).scheme.split("+")[0]
    if scheme not in schemes:
        raise ConfigError(
            f"{PREFIX}{name}={raw!r} must be a URL starting with one of: "
            + ", ".join(s + "://" for s in schemes)
        )
    return raw


def _deal_fee_bearer(env: Mapping[str, str]) -> str:
    raw = (env.get(PREFIX + "DEAL_FEE_BEARER") or "platform").strip().lower()
    if raw not in ("platform", "creator"):
        raise ConfigError(f"{PREFIX}DEAL_FEE_BEARER={raw!r} must be platform or creator")
    return raw


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(PREFIX + name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise ConfigError(f"{PREFIX}{name}={raw!r} must be on or off")


def _velocity(env: Mapping[str, str], name: str,
              default: tuple[int, int]) -> tuple[int, int] | None:
    """``N/SECONDS`` (at most N in any SECONDS) or ``off``."""
    raw = (env.get(PREFIX + name) or "").strip().lower()
    if raw == "":
        return default
    if raw == "off":
        return None
    count, _, window = raw.partition("/")
    if not (count.isdigit() and window.isdigit() and int(count) > 0 and int(window) > 0):
        raise ConfigError(f"{PREFIX}{name}={raw!r} must be N/SECONDS (e.g. 30/3600) or off")
    return int(count), int(window)


def _rate_limit_storage(env: Mapping[str, str]) -> str | None:
    raw = env.get(PREFIX + "RATE_LIMIT_STORAGE") or None
    return None if raw is None else _url(env, "RATE_LIMIT_STORAGE", raw,
                                         ("memory", "redis", "rediss"))


# The payout minimum of a currency not in CREATORPAY_PAYOUT_MINIMUMS: this many times Stripe's
# minimum charge (usd 50 -> 1000, i.e. USD 10.00).
PAYOUT_MINIMUM_DEFAULT = 20


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(PREFIX + name) or default).strip()
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise ConfigError(f"{PREFIX}{name}={raw!r} must be one of: " + ", ".join(choices))


def _payout_minimums(env: Mapping[str, str]) -> dict[str, int]:
    """``CREATORPAY_PAYOUT_MINIMUMS="usd=1000,jpy=1000"``: minor units per currency."""
    from payments.money import CURRENCIES

    table = {code: c.min_charge * PAYOUT_MINIMUM_DEFAULT for code, c in CURRENCIES.items()}
    raw = env.get(PREFIX + "PAYOUT_MINIMUMS") or ""
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        code, _, value = part.partition("=")
        code = code.strip().lower()
        if code not in CURRENCIES or not value.strip().isdigit() or int(value) < 1:
            raise ConfigError(
                f"{PREFIX}PAYOUT_MINIMUMS: {part!r} is not <currency>=<positive minor units>")
        table[code] = int(value)
    return table


def load_config(env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build the configuration from ``env`` (default: ``os.environ``) plus explicit overrides."""
    env = os.environ if env is None else env
    var_dir = Path(env.get(PREFIX + "VAR_DIR") or "var")
    db_default = f"sqlite:///{(var_dir / 'creatorpay.sqlite3').resolve()}"
    broker_default = f"sqla+sqlite:///{(var_dir / 'broker.sqlite3').resolve()}"
    database_url = _url(env, "DATABASE_URL", db_default, ("sqlite", "postgresql", "postgres"))
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url[len("postgres://") :]
    if database_url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; SQLAlchemy would otherwise look for psycopg2.
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    broker_url = _url(
        env, "BROKER_URL", broker_default, ("sqla", "redis", "rediss", "amqp", "pyamqp", "memory")
    )

    api_base = env.get(PREFIX + "STRIPE_API_BASE") or None
    if api_base is not None:
        _url(env, "STRIPE_API_BASE", api_base, ("http", "https"))
    secret_key = env.get(PREFIX + "STRIPE_SECRET_KEY") or "sk_test_creatorpay_sandbox"  # noqa: S105
    if not secret_key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
        raise ConfigError(f"{PREFIX}STRIPE_SECRET_KEY must start with sk_test_ or sk_live_")
    raw_secrets = env.get(PREFIX + "STRIPE_WEBHOOK_SECRET") or ""
    secrets = tuple(s.strip() for s in raw_secrets.split(",") if s.strip())
    for s in secrets:
        if not s.startswith("whsec_"):
            raise ConfigError(f"{PREFIX}STRIPE_WEBHOOK_SECRET values must start with whsec_")

    raw_rate = env.get(PREFIX + "PLATFORM_FEE_RATE") or "0.10"
    try:
        rate = Decimal(raw_rate)
    except InvalidOperation:
        raise ConfigError(f"{PREFIX}PLATFORM_FEE_RATE={raw_rate!r} is not a decimal") from None
    if not Decimal(0) <= rate < Decimal(1):
        raise ConfigError(f"{PREFIX}PLATFORM_FEE_RATE={raw_rate} must be in [0, 1)")

    payout_minimums = _payout_minimums(env)
    raw_reserve = env.get(PREFIX + "RESERVE_RATE") or "0"
    try:
        reserve_rate = Decimal(raw_reserve)
    except InvalidOperation:
        raise ConfigError(f"{PREFIX}RESERVE_RATE={raw_reserve!r} is not a decimal") from None
    if not Decimal(0) <= reserve_rate < Decimal(1):
        raise ConfigError(f"{PREFIX}RESERVE_RATE={raw_reserve} must be in [0, 1)")

    secret = env.get(PREFIX + "SECRET_KEY") or None
    if secret is not None and len(secret) < 32:
        raise ConfigError(f"{PREFIX}SECRET_KEY must be at least 32 characters")

    clock_url = env.get(PREFIX + "CLOCK_URL") or None
    if clock_url is None and api_base is not None and env.get(PREFIX + "SANDBOX_CLOCK", "1") != "0":
        host = urlparse(api_base).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            # A loopback Stripe is our sandbox: its clock is the business clock.
            clock_url = api_base.rstrip("/") + "/_sandbox/clock"

    config = Config(
        database_url=database_url,
        broker_url=broker_url,
        port=_int(env, "PORT", 5000, 1, 65535),
        sandbox_port=_int(env, "SANDBOX_PORT", 12111, 1, 65535),
        stripe_secret_key=secret_key,
        stripe_api_base=api_base,
        stripe_webhook_secrets=secrets,
        platform_fee_rate=rate,
        hold_days=_int(env, "HOLD_DAYS", 7, 0, 365),
        max_tip_amount=_int(env, "MAX_TIP_AMOUNT", 1_000_000, 1, 10**12),
        tip_velocity_per_fan=_velocity(env, "TIP_VELOCITY_PER_FAN", (30, 3600)),
        tip_velocity_per_card=_velocity(env, "TIP_VELOCITY_PER_CARD", (30, 3600)),
        payout_minimums=payout_minimums,
        reserve_rate=reserve_rate,
        reserve_days=_int(env, "RESERVE_DAYS", 30, 0, 365),
        deal_fee_bearer=_deal_fee_bearer(env),
        var_dir=var_dir,
        clock_url=clock_url,
        rate_limits=_switch(env, "RATE_LIMITS", True),
        rate_limit_storage=_rate_limit_storage(env),
        proxy_hops=_int(env, "PROXY_HOPS", 0, 0, 10),
        secret_key=secret,
        dashboard_link_ttl=_int(env, "DASHBOARD_LINK_TTL", 600, 30, 86400),
        dashboard_session_ttl=_int(env, "DASHBOARD_SESSION_TTL", 3600, 60, 86400),
        log_format=_choice(env, "LOG_FORMAT", "json", ("json", "text")),
        log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS),
        metrics_token=(env.get(PREFIX + "METRICS_TOKEN") or "").strip() or None,
    )
    return config.with_overrides(**overrides) if overrides else config
