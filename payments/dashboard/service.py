"""Sign-in links, dashboard sessions, and the page's figures (read from the other domains).

A sign-in link carries a token signed with the server's secret (never the creator's key):
``{creator, key, nonce}`` and the time it was made, under a salt of its own, so a session
cookie can never pass for a link nor the other way round. Opening it records the nonce
(unique: a link works once) as a sign-in row, whose id the session cookie carries, signed
under another salt. Tokens are timed by the business clock (``payments.clock``), so a frozen
or sandbox clock expires them in tests as it would in production. A revoked API key ends
its links and its sessions.

The figures come from ``ledger.creator_balances`` / ``creator_ledger``, the statements'
month figures and the deals' escrow: this module adds no second way to compute money.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.accounts.models import ApiKey, Creator
from payments.clock import now_ts
from payments.config import Config
from payments.dashboard.models import DashboardSignIn
from payments.db import insert_ignoring_conflicts
from payments.deals import service as deals
from payments.errors import Unauthorized
from payments.ledger import service as ledger
from payments.statements import service as statements

LINK_SALT = "creatorpay.dashboard.link.v1"
SESSION_SALT = "creatorpay.dashboard.session.v1"
OPEN_DEAL_STATUSES = ("proposed", "accepted", "funding", "funded", "disputed")
EARNING_KINDS = (("tips", "Tips"), ("subscriptions", "Memberships"), ("deals", "Deals"))
CHART_MONTHS = 6
ACTIVITY_LINES = 15


# ----------------------------------------------------------------------------- secret


def server_secret(config: Config) -> str:
    """``CREATORPAY_SECRET_KEY``, or one made once and kept under ``var_dir``."""
    if config.secret_key:
        return config.secret_key
    return _secret_file(str(Path(config.var_dir).resolve() / "secret_key"))


@lru_cache(maxsize=8)
def _secret_file(name: str) -> str:
    """Read the secret, making it first if need be: written to a file of this process's own,
    then linked into place, which fails if another process got there first; either way
    every process reads the one complete file."""
    path = Path(name)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        tmp.write_text(secrets.token_urlsafe(48) + "\n")
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


class _ClockSigner(TimestampSigner):
    """Timestamps from the business clock, so tests and the sandbox clock move expiry."""

    def get_timestamp(self) -> int:
        return now_ts()


def _serializer(config: Config, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(server_secret(config), salt=salt, signer=_ClockSigner)


def _load(config: Config, salt: str, token: str, max_age: int, what: str) -> dict[str, Any]:
    try:
        data = _serializer(config, salt).loads(token, max_age=max_age)
    except SignatureExpired:
        raise Unauthorized(f"This {what} has expired.",
                           code=f"dashboard_{what}_expired") from None
    except BadSignature:
        raise Unauthorized(f"This {what} is not valid.",
                           code=f"dashboard_{what}_invalid") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), int) for k in ("c", "k")):
        raise Unauthorized(f"This {what} is not valid.",
                           code=f"dashboard_{what}_invalid")
    return data


def _check_key(session: Session, key_id: int, creator_id: int) -> None:
    row = session.get(ApiKey, key_id)
    if row is None or row.role != "creator" or row.owner_id != creator_id:
        raise Unauthorized("This sign-in is not valid.", code="dashboard_link_invalid")
    if row.revoked_at is not None:
        raise Unauthorized("The API key this sign-in was made with has been revoked.",
                           code="api_key_revoked")


# ----------------------------------------------------------------------------- signing in


@dataclass(frozen=True)
class Link:
    token: str
    expires_at: int


@dataclass(frozen=True)
class SignIn:
    cookie: str
    creator_id: int
    expires_at: int


def make_link(session: Session, config: Config, creator_id: int, key_id: int) -> Link:
    """A sign-in token for the creator, bound to the API key that asked for it."""
    _check_key(session, key_id, creator_id)
    token = _serializer(config, LINK_SALT).dumps(
        {"c": creator_id, "k": key_id, "n": secrets.token_hex(16)})
    return Link(token=str(token), expires_at=now_ts() + config.dashboard_link_ttl)


def _link(session: Session, config: Config, token: str) -> dict[str, Any]:
    data = _load(config, LINK_SALT, token, config.dashboard_link_ttl, "link")
    nonce = data.get("n")
    if not isinstance(nonce, str) or len(nonce) != 32:
        raise Unauthorized("This link is not valid.", code="dashboard_link_invalid")
    _check_key(session, data["k"], data["c"])
    return data


def _used() -> Unauthorized:
    return Unauthorized("This link has been used already; ask for a new one.",
                        code="dashboard_link_used")


def check_link(session: Session, config: Config, token: str) -> Creator:
    """The creator a link signs in, if it is valid and unused; it is not used up."""
    data = _link(session, config, token)
    if session.scalar(select(DashboardSignIn.id).where(
            DashboardSignIn.nonce == data["n"])) is not None:
        raise _used()
    creator = session.get(Creator, data["c"])
    if creator is None:
        raise Unauthorized("This link is not valid.", code="dashboard_link_invalid")
    return creator


def open_link(session: Session, config: Config, token: str) -> SignIn:
    """Check the link (signature, age, its key), use it up, and open a session."""
    data = _link(session, config, token)
    nonce = data["n"]
    now = now_ts()
    expires = now + config.dashboard_session_ttl
    # RETURNING says whether this request inserted the nonce, on both databases (the
    # statement's rowcount did not, on PostgreSQL through the session's connection).
    row_id = session.scalar(insert_ignoring_conflicts(
        session, DashboardSignIn.__table__, ["nonce"]).values(
            nonce=nonce, creator_id=data["c"], key_id=data["k"], created=now,
            expires_at=expires).returning(DashboardSignIn.__table__.c.id))
    if row_id is None:
        raise _used()
    cookie = _serializer(config, SESSION_SALT).dumps({"c": data["c"], "k": data["k"],
                                                      "s": int(row_id)})
    return SignIn(cookie=str(cookie), creator_id=data["c"], expires_at=expires)


def session_creator(session: Session, config: Config, cookie: str | None) -> Creator:
    """The creator whose dashboard session this cookie is, or 401."""
    if not cookie:
        raise Unauthorized("Sign in with a dashboard link.", code="dashboard_session_missing")
    data = _load(config, SESSION_SALT, cookie, config.dashboard_session_ttl, "session")
    sign_in = session.get(DashboardSignIn, data.get("s")) if isinstance(data.get("s"),
                                                                          int) else None
    if (sign_in is None or sign_in.creator_id != data["c"] or sign_in.key_id != data["k"]
            or sign_in.signed_out_at is not None or sign_in.expires_at <= now_ts()):
        raise Unauthorized("This session has ended; sign in again.",
                           code="dashboard_session_expired")
    _check_key(session, data["k"], data["c"])
    creator = session.get(Creator, data["c"])
    if creator is None:
        raise Unauthorized("This session is not valid.", code="dashboard_session_invalid")
    return creator


def sign_out(session: Session, config: Config, cookie: str | None) -> None:
    """End the cookie's session (a valid one; anything else is already no session)."""
    try:
        data = _load(config, SESSION_SALT, cookie or "", config.dashboard_session_ttl,
                     "session")
    except Unauthorized:
        return
    sign_in = session.get(DashboardSignIn, data.get("s")) if isinstance(data.get("s"),
                                                                          int) else None
    if sign_in is not None and sign_in.signed_out_at is None:
        sign_in.signed_out_at = now_ts()
        session.flush()


# ----------------------------------------------------------------------------- the page


def _month_figures(session: Session, creator: Creator, currency: str,
                   periods: list[str]) -> list[dict[str, Any]]:
    """Each month's earnings by kind: a final month's stored figures, an open month's
    computed by the statements service."""
    final = statements.finals(session, creator.id, currency)
    out = []
    for period in periods:
        row = final.get(period)
        figures = (dict(row.figures) if row is not None
                   else statements.compute(session, creator.id, currency, period, final))
        out.append({"period": period, **{k: int(figures[k]) for k, _ in EARNING_KINDS}})
    return out


def page(session: Session, creator: Creator, *, now: int | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, in integer minor units."""
    now = now_ts() if now is None else now
    balances = ledger.creator_balances(session, creator.id)
    if not any(b["currency"] == creator.default_currency for b in balances):
        balances.append({"currency": creator.default_currency,
                         **dict.fromkeys(ledger.BALANCE_PURPOSES, 0)})
    # The creator's own currency first, then the others alphabetically.
    balances.sort(key=lambda b: (b["currency"] != creator.default_currency, b["currency"]))
    this = statements.period_of(now)
    periods = [statements.shift(this, i - CHART_MONTHS + 1) for i in range(CHART_MONTHS)]
    currencies = sorted(statements.currencies(session, creator),
                        key=lambda c: (c != creator.default_currency, c))
    charts = [{"currency": cur, "months": _month_figures(session, creator, cur, periods)}
              for cur in currencies]
    activity, more_activity = ledger.creator_ledger(session, creator.id, limit=ACTIVITY_LINES)
    actor = deals.Actor("creator", creator.id, creator.public_id)
    open_deals = []
    for status in OPEN_DEAL_STATUSES:
        rows, _ = deals.list_deals(session, actor, limit=50, starting_after=None, status=status)
        open_deals.extend(rows)
    open_deals.sort(key=lambda d: d.id, reverse=True)
    brands = _brand_names(session, {d.brand_id for d in open_deals})
    months, _ = statements.list_statements(session, creator, limit=12, now=now)
    return {
        "creator": {"id": creator.public_id, "handle": creator.handle,
                    "display_name": creator.display_name,
                    "default_currency": creator.default_currency},
        "now": now,
        "balances": balances,
        "charts": charts,
        "activity": activity,
        "more_activity": more_activity,
        "deals": [{"id": d.public_id, "title": d.title, "status": d.status,
                   "brand_name": brands.get(d.brand_id, ""), "currency": d.currency,
                   "amount": d.amount, "escrow": deals.escrow(d)} for d in open_deals],
        "statements": months,
    }


def _brand_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    from payments.accounts.models import Brand

    return {int(i): str(n) for i, n in session.execute(
        select(Brand.id, Brand.name).where(Brand.id.in_(sorted(ids))))}
