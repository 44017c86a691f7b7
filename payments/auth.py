"""API keys and the current principal.

A key is ``<role prefix>_<40 random base62 characters>``. We store the first 12 characters for
lookup and a SHA-256 digest of the whole key (keys are random and long, so a fast hash is
the right tool); the digest is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.accounts.models import ApiKey
from payments.clock import now_ts
from payments.errors import Forbidden, Unauthorized
from payments.ids import random_token

ROLE_PREFIX = {"creator": "ck", "fan": "fk", "brand": "bk", "admin": "ak"}
PREFIX_ROLE = {v: k for k, v in ROLE_PREFIX.items()}
LOOKUP_LEN = 12


@dataclass(frozen=True)
class Principal:
    role: str  # creator | fan | brand | admin | guest
    owner_id: int | None  # creators.id / fans.id / brands.id; None for admin and guests
    key_id: int | None = None

    @property
    def scope(self) -> str:
        """Namespace for idempotency keys and ownership checks."""
        return f"{self.role}:{self.owner_id if self.owner_id is not None else self.key_id}"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(session: Session, role: str, owner_id: int | None, label: str | None = None) -> str:
    """Create a key for ``role``; returns the key itself, which is never stored."""
    key = f"{ROLE_PREFIX[role]}_{random_token(40)}"
    session.add(
        ApiKey(
            lookup=key[:LOOKUP_LEN], digest=_digest(key), role=role, owner_id=owner_id,
            label=label,
        )
    )
    session.flush()
    return key


def revoke_key(session: Session, key: str) -> bool:
    row = session.scalar(select(ApiKey).where(ApiKey.lookup == key[:LOOKUP_LEN]))
    if row is None or not hmac.compare_digest(row.digest, _digest(key)):
        return False
    if row.revoked_at is None:
        row.revoked_at = now_ts()
    return True


def rotate_key(session: Session, old_key: str, role: str | None = None) -> str | None:
    """A new key with the old one's role, owner and label; the old one revoked at once.

    None when ``old_key`` is unknown, already revoked, or not of ``role``. The caller commits
    both together, so there is no moment with no valid key and none with two.
    """
    row = session.scalar(select(ApiKey).where(ApiKey.lookup == old_key[:LOOKUP_LEN]))
    if (row is None or not hmac.compare_digest(row.digest, _digest(old_key))
            or row.revoked_at is not None or (role is not None and row.role != role)):
        return None
    row.revoked_at = now_ts()
    return issue_key(session, row.role, row.owner_id, label=row.label)


def principal_for_key(session: Session, key: str) -> Principal:
    prefix = key.split("_", 1)[0]
    if prefix not in PREFIX_ROLE or len(key) < LOOKUP_LEN + 8:
        raise Unauthorized("The API key is malformed.", code="invalid_api_key")
    row = session.scalar(select(ApiKey).where(ApiKey.lookup == key[:LOOKUP_LEN]))
    # Compare even when the row is missing, so timing does not tell which keys exist.
    expected = row.digest if row is not None else _digest("missing" + key)
    if row is None or not hmac.compare_digest(expected, _digest(key)):
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")
    if row.revoked_at is not None:
        raise Unauthorized("The API key has been revoked.", code="api_key_revoked")
    return Principal(role=row.role, owner_id=row.owner_id, key_id=row.id)


def parse_authorization(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Use 'Authorization: Bearer <api key>'.", code="invalid_authorization_header"
        )
    return token.strip()


F = TypeVar("F", bound=Callable[..., Any])


def current_principal(optional: bool = False) -> Principal | None:
    from flask import g, request

    from payments.db import request_session

    if "principal" in g:
        known = cast(Principal | None, g.principal)
        if known is None and not optional:
            raise Unauthorized("An API key is required.", code="missing_api_key")
        return known
    key = parse_authorization(request.headers.get("Authorization"))
    if key is None:
        if optional:
            g.principal = None
            return None
        raise Unauthorized("An API key is required.", code="missing_api_key")
    principal = principal_for_key(request_session(), key)
    g.principal = principal
    return principal


def require(*roles: str, allow_anonymous: bool = False) -> Callable[[F], F]:
    """Authenticate (401), then check the role (403), before the body is parsed.

    Place it under ``@blp.route`` and above ``@blp.arguments`` so the contract's order of
    checks holds. With ``allow_anonymous`` a request without a key passes with no principal.
    """

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal(optional=allow_anonymous)
            if principal is not None and principal.role not in roles:
                raise Forbidden(
                    f"A {principal.role} key cannot do this; it needs: {', '.join(roles)}.",
                    code="wrong_role",
                )
            return fn(*args, **kwargs)

        _document(wrapper, roles, allow_anonymous)
        return cast(F, wrapper)

    return decorator


SECURITY_SCHEME = "apiKey"


def _document(view: Any, roles: tuple[str, ...], allow_anonymous: bool) -> None:
    """Say in the OpenAPI document who may call ``view``: the bearer key it needs (optional
    with ``allow_anonymous``) and, as ``x-roles``, the kinds of principal (flask-smorest
    merges ``_apidoc["manual_doc"]`` into the operation)."""
    doc = deepcopy(getattr(view, "_apidoc", {}))
    manual = doc.setdefault("manual_doc", {})
    manual["security"] = [{SECURITY_SCHEME: []}] + ([{}] if allow_anonymous else [])
    manual["x-roles"] = list(roles) + (["guest"] if allow_anonymous else [])
    view._apidoc = doc


def check_presented_key(fn: F) -> F:
    """Authenticate whatever key the request presents, even where none is needed.

    Wrapped around every ``/v1`` view by the app factory (inside the rate limits, so ``429``
    still comes first): a malformed, unknown or revoked key is ``401`` on public routes too,
    as Stripe answers, so a revoked key works nowhere. Without a key the view decides.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_principal(optional=True)
        return fn(*args, **kwargs)

    return cast(F, wrapper)


def principal() -> Principal:
    """The authenticated principal of this request (after ``require``)."""
    p = current_principal()
    assert p is not None
    return p
