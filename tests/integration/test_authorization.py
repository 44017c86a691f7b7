"""The authorization matrix: every route the app serves (``app.url_map``) times every kind of
caller, each answer checked against the contract's "who" column (/work/shared/API.md).

The convention (docs/api.md, "Who may call what"): no key ``401``; a malformed, unknown or
revoked key ``401`` on every ``/v1`` route, public ones included; the wrong kind of
principal ``403 wrong_role``; the right kind but another owner's object ``404``, exactly as
if it did not exist, so ids do not leak; ``/me`` routes and lists answer the caller's own.

Each request runs in a savepoint rolled back afterwards, so every caller meets the same
objects (made by the ``world`` fixture). A refused request must leave every table as it
was, call Stripe not at all and enqueue nothing. No answer of any route to any caller shows
an API key (shown once, in its sign-up answer) or a webhook or Stripe secret.

A route with no line in EXPECTED fails the test by name: adding a route means adding a
line here, e.g. ``"POST /v1/creators/me/dashboard_links": mine(creator=201),``,
``"GET /metrics": infra(200),`` or, for a page that sends visitors without a session to
log in, ``"GET /dashboard": {**infra(200), "none": 302},``. The same table tells
tests/integration/test_schemathesis.py which key to call each operation with.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text

from payments.db import db
from payments.domains import metadata
from payments.gateway import sign_payload
from tests.fixtures.summary import report
from tests.fixtures.world import ROLES, World, creator_body, deal_body, fan_body

REFUSALS = ("missing_api_key", "api_key_revoked", "wrong_role")
SECOND = {"fan2": "fan", "creator2": "creator", "brand2": "brand"}


def _expect(allowed: dict[str, int], others: int | None) -> dict[str, int]:
    """allowed: role -> status for the roles that may call (the first fan/creator/brand,
    admin, or ``none`` for guests); every other role is refused with 403, no key and a
    revoked key with 401. ``others`` is what the second fan/creator/brand gets when its
    kind may call: 404 (the object is not theirs) or None (the same as the first: ``/me``
    routes and lists answer the caller's own)."""
    out = {"none": 401, "revoked": 401}
    for role in ROLES:
        if role in ("none", "revoked"):
            continue
        first = SECOND.get(role, role)
        out[role] = (allowed.get(first, 403) if role == first or first not in allowed
                     else (others if others is not None else allowed[first]))
    out.update(allowed)
    return out


def mine(**allowed: int) -> dict[str, int]:
    """A route about the caller itself (``/me``, lists, creations, admin routes)."""
    return _expect(allowed, None)


def owned(**allowed: int) -> dict[str, int]:
    """A route about an object in the path, owned by the first fan/creator/brand."""
    return _expect(allowed, 404)


def public(status: int) -> dict[str, int]:
    """Anyone, with or without a key; a key that is sent is still checked."""
    return {**dict.fromkeys(ROLES, status), "revoked": 401}


def infra(status: int) -> dict[str, int]:
    """Outside /v1 (health, docs, Stripe's webhooks): keys are not read at all."""
    return dict.fromkeys(ROLES, status)


# One line per route: "METHOD rule" -> role -> status. A 409 or 404 for an allowed role is
# the object's state or a reference in the body, decided after authorization (noted).
EXPECTED: dict[str, dict[str, int]] = {
    "GET /docs": infra(200),
    "GET /docs-assets/<filename>": infra(200),
    "GET /openapi.json": infra(200),
    "GET /static/<filename>": infra(404),  # Flask's static route; we serve no static files
    "GET /healthz": infra(200),
    "GET /readyz": infra(200),
    "POST /webhooks/stripe": infra(200),  # Stripe's signature decides, not an API key
    "POST /v1/creators": public(201),
    "POST /v1/fans": public(201),
    "POST /v1/brands": public(201),
    "GET /v1/creators/<ref>": public(200),
    "GET /v1/creators/me": mine(creator=200),
    "PATCH /v1/creators/me": mine(creator=200),
    "POST /v1/creators/me/connect": mine(creator=200),
    "GET /v1/creators/me/balance": mine(creator=200),
    "GET /v1/creators/me/ledger": mine(creator=200),
    "GET /v1/creators/me/ledger/export": mine(creator=200),
    "GET /v1/creators/me/tips": mine(creator=200),
    "GET /v1/creators/me/tiers": mine(creator=200),
    "GET /v1/creators/me/subscribers": mine(creator=200),
    "GET /v1/creators/me/payouts": mine(creator=200),
    "POST /v1/creators/me/payouts": mine(creator=409),  # payouts_not_enabled: no account
    "GET /v1/creators/me/payouts/<payout_id>": owned(creator=200),
    "GET /v1/creators/me/payout-settings": mine(creator=200),
    "PATCH /v1/creators/me/payout-settings": mine(creator=200),
    "GET /v1/creators/me/statements": mine(creator=200),
    "GET /v1/creators/me/statements/<period>": mine(creator=200),  # each their own month
    "POST /v1/tips": mine(none=201, fan=201),  # a guest with an email, or a fan
    "GET /v1/tips/<tip_id>": owned(fan=200, creator=200, admin=200),
    "POST /v1/tips/<tip_id>/refund": owned(creator=200, admin=200),
    "POST /v1/tiers": mine(creator=201),
    "GET /v1/tiers/<tier_id>": public(200),
    "PATCH /v1/tiers/<tier_id>": owned(creator=200),
    "GET /v1/subscriptions": mine(fan=200),
    "POST /v1/subscriptions": mine(fan=201),  # to another creator's tier
    "GET /v1/subscriptions/<sub_id>": owned(fan=200, creator=200, admin=200),
    "POST /v1/subscriptions/<sub_id>/cancel": owned(fan=200),
    "POST /v1/subscriptions/<sub_id>/resume": owned(fan=409),  # not set to end
    "POST /v1/subscriptions/<sub_id>/change": owned(fan=200),  # on a subscription of its own
    # Nothing paid yet: the invoice is paid once Stripe's events say so (none delivered here).
    "POST /v1/subscriptions/<sub_id>/refund": owned(creator=409, admin=409),
    "GET /v1/deals": mine(brand=200, creator=200),
    "POST /v1/deals": mine(brand=201),
    "GET /v1/deals/<deal_id>": owned(brand=200, creator=200, admin=200),
    "POST /v1/deals/<deal_id>/accept": owned(creator=200),
    "POST /v1/deals/<deal_id>/decline": owned(creator=200),
    "POST /v1/deals/<deal_id>/fund": owned(brand=409),  # proposed, not accepted yet
    "POST /v1/deals/<deal_id>/milestones/<milestone_id>/submit": owned(creator=409),
    "POST /v1/deals/<deal_id>/milestones/<milestone_id>/request_changes": owned(brand=409),
    "POST /v1/deals/<deal_id>/milestones/<milestone_id>/approve": owned(brand=409),
    "POST /v1/deals/<deal_id>/cancel": owned(brand=200, creator=200),
    "POST /v1/deals/<deal_id>/dispute": owned(brand=409, creator=409),  # not funded
    "POST /v1/admin/deals/<deal_id>/resolve": mine(admin=409),  # not disputed
    "POST /v1/admin/creators/<ref>/block_tips": mine(admin=200),
    "POST /v1/admin/creators/<ref>/unblock_tips": mine(admin=200),
    "GET /v1/admin/trial-balance": mine(admin=200),
    "GET /v1/admin/reconciliation": mine(admin=200),
    "GET /v1/admin/webhook-events": mine(admin=200),
    "POST /v1/admin/webhook-events/<event_id>/replay": mine(admin=200),
    "GET /v1/admin/jobs": mine(admin=200),
    "POST /v1/admin/jobs/<name>/run": mine(admin=202),
    "GET /v1/admin/ledger/verify": mine(admin=200),
    "POST /v1/creators/me/dashboard_links": mine(creator=201),
    "GET /metrics": infra(200),  # no CREATORPAY_METRICS_TOKEN in the suite
    # The dashboard's HTML pages never read API keys: a session cookie or a sign-in link.
    "GET /dashboard": infra(401),  # no session cookie
    "GET /dashboard/statements/<period>.<fmt>": infra(401),
    "GET /dashboard/sign-in": infra(401),  # no token
    "POST /dashboard/sign-in": infra(401),
    "POST /dashboard/sign-out": infra(200),  # ends a session if there is one
}


def _signed_event(w: World) -> dict[str, Any]:
    body = json.dumps({"id": "evt_matrix_" + str(time.time_ns()), "object": "event",
                       "type": "matrix.unhandled", "created": int(time.time()),
                       "livemode": False, "data": {"object": {}}}).encode()
    secret = w.app.config["CREATORPAY"].stripe_webhook_secrets[0]
    return {"data": body, "content_type": "application/json",
            "headers": {"Stripe-Signature": sign_payload(body, secret)}}


# What each request carries besides its key: a valid body, so that authorization (not
# validation) decides; query strings where one is required; a path value of its own.
REQUESTS: dict[str, Callable[[World], dict[str, Any]]] = {
    "POST /webhooks/stripe": _signed_event,
    "POST /v1/creators": lambda w: {"json": creator_body()},
    "POST /v1/fans": lambda w: {"json": fan_body()},
    "POST /v1/brands": lambda w: {"json": {"name": "Acme", "email": "acme@example.com",
                                           "country": "DE"}},
    "PATCH /v1/creators/me": lambda w: {"json": {"display_name": "Renamed"}},
    "POST /v1/creators/me/payouts": lambda w: {"json": {"currency": "usd"}},
    "PATCH /v1/creators/me/payout-settings": lambda w: {"json": {"schedule": "daily"}},
    "POST /v1/tips": lambda w: {"json": {
        "creator": w.handles["creator"], "amount": 500, "currency": "usd",
        "email": "guest@example.com", "payment_method": "pm_card_visa"}},
    "POST /v1/tips/<tip_id>/refund": lambda w: {"json": {"amount": 100}},
    "POST /v1/tiers": lambda w: {"json": {"name": "Platinum", "amount": 2500,
                                          "currency": "usd", "interval": "year"}},
    "PATCH /v1/tiers/<tier_id>": lambda w: {"json": {"name": "Silver plus"}},
    "POST /v1/subscriptions": lambda w: {"json": {"tier": w.ids["tier_other"],
                                                  "payment_method": "pm_card_visa"}},
    "POST /v1/subscriptions/<sub_id>/cancel": lambda w: {"json": {}},
    "POST /v1/subscriptions/<sub_id>/resume": lambda w: {"json": {}},
    "POST /v1/subscriptions/<sub_id>/change": lambda w: {
        "json": {"tier": w.ids["tier_c2"]}, "sub_id": w.ids["sub_change"]},
    "POST /v1/subscriptions/<sub_id>/refund": lambda w: {"json": {"amount": 100}},
    "POST /v1/deals": lambda w: {"json": deal_body(w.handles["creator"])},
    "POST /v1/deals/<deal_id>/accept": lambda w: {"json": {}},
    "POST /v1/deals/<deal_id>/decline": lambda w: {"json": {"reason": "Busy"}},
    "POST /v1/deals/<deal_id>/fund": lambda w: {"json": {"payment_method": "pm_card_visa"}},
    "POST /v1/deals/<deal_id>/milestones/<milestone_id>/submit": lambda w: {
        "json": {"proof_url": "https://example.com/post/1"}},
    "POST /v1/deals/<deal_id>/milestones/<milestone_id>/request_changes": lambda w: {
        "json": {"note": "Show the logo."}},
    "POST /v1/deals/<deal_id>/milestones/<milestone_id>/approve": lambda w: {"json": {}},
    "POST /v1/deals/<deal_id>/cancel": lambda w: {"json": {"reason": "Changed plans"}},
    "POST /v1/deals/<deal_id>/dispute": lambda w: {"json": {"reason": "No post"}},
    "POST /v1/admin/deals/<deal_id>/resolve": lambda w: {
        "json": {"creator_amount": 0, "brand_refund_amount": 0}},
    "POST /v1/admin/creators/<ref>/block_tips": lambda w: {"json": {"reason": "Review"}},
    "GET /v1/admin/reconciliation": lambda w: {"query_string": {"date": w.ids["date"]}},
}


def path_values(w: World) -> dict[str, str]:
    return {"tip_id": w.ids["tip"], "tier_id": w.ids["tier"], "sub_id": w.ids["sub"],
            "deal_id": w.ids["deal"], "milestone_id": w.ids["milestone"],
            "payout_id": w.ids["payout"], "period": w.ids["period"],
            "ref": w.handles["creator"], "event_id": w.ids["event"],
            "filename": "swagger-ui.css", "fmt": "csv",
            "name": "ledger.mature"}


PARAM = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


def route_key(method: str, rule: str) -> str:
    """``POST /v1/tips/<tip_id>/refund``: Flask's rule without its converters."""
    return f"{method} {PARAM.sub(lambda m: '<' + m.group(1) + '>', rule)}"


def served_routes(app: Any) -> list[tuple[str, str]]:
    """(key, rule) of every method of every route the app serves."""
    return sorted((route_key(method, r.rule), r.rule) for r in app.url_map.iter_rules()
                  for method in (r.methods or set()) - {"HEAD", "OPTIONS"})


def tables_snapshot(conn: Any) -> Any:
    """Every row of every table (on PostgreSQL a digest per table, in one round trip)."""
    tables = metadata().sorted_tables
    if conn.dialect.name == "postgresql":
        # Table names are our own metadata's, not input.
        digests = ", ".join(
            f"(SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "  # noqa: S608
            f'FROM "{t.name}" x)' for t in tables)
        return tuple(conn.execute(text(f"SELECT {digests}")).one())
    return {t.name: sorted(map(repr, conn.execute(select(t)).all())) for t in tables}


def test_every_route_answers_every_role_as_the_contract_says(world: World) -> None:
    w = world
    routes = served_routes(w.app)
    missing = [key for key, _ in routes if key not in EXPECTED]
    assert not missing, f"routes with no line in EXPECTED (add one each): {missing}"
    stale = sorted(set(EXPECTED) - {key for key, _ in routes})
    assert not stale, f"EXPECTED names routes the app does not serve: {stale}"
    values = path_values(w)
    conn = db._bound  # noqa: SLF001 - the test's connection: each request in a savepoint
    baseline = tables_snapshot(conn)
    config = w.app.config["CREATORPAY"]
    secrets = {f"{role}'s key": k for role, k in w.keys.items() if k}
    secrets.update({f"webhook secret {i}": s for i, s in enumerate(config.stripe_webhook_secrets)})
    secrets["Stripe secret key"] = config.stripe_secret_key or ""
    secrets = {name: value for name, value in secrets.items() if value}
    stripe_calls = w.sandbox.stats()["requests"]
    wrong: list[str] = []
    checked = 0
    for key, rule in routes:
        method = key.split()[0]
        for role in ROLES:
            expected = EXPECTED[key][role]
            extra = REQUESTS.get(key, lambda _w: {})(w)
            own = {**values, **{k: extra.pop(k) for k in list(extra) if k in values}}
            path = PARAM.sub(lambda m, own=own: own[m.group(1)], rule)  # type: ignore[misc]
            headers = {**w.headers(role), **extra.pop("headers", {})}
            savepoint = conn.begin_nested()
            w.enqueued.clear()
            try:
                r = w.client.open(path, method=method, headers=headers, **extra)
                checked += 1
                text = r.get_data(as_text=True)
                shown = [name for name, secret in secrets.items() if secret in text]
                if shown:  # keys are shown once, at sign-up; secrets never
                    wrong.append(f"{key} as {role}: the answer shows {shown}")
                if r.status_code != expected:
                    wrong.append(f"{key} as {role}: {r.status_code} (expected {expected}) "
                                 f"{r.get_data(as_text=True)[:160]}")
                elif rule.startswith("/v1/") and (
                        expected in (401, 403) or (expected == 404 and role in SECOND)):
                    # Refused: nothing written, Stripe not called, no task sent.
                    code = r.get_json()["error"]["code"]
                    if code not in REFUSALS and not code.endswith("_not_found"):
                        wrong.append(f"{key} as {role}: refused with code {code}")
                    if tables_snapshot(conn) != baseline:
                        wrong.append(f"{key} as {role}: refused but changed the database")
                    if w.enqueued:
                        wrong.append(f"{key} as {role}: refused but enqueued {w.enqueued}")
                    if w.sandbox.stats()["requests"] != stripe_calls:
                        wrong.append(f"{key} as {role}: refused but called Stripe")
            finally:
                savepoint.rollback()
            stripe_calls = w.sandbox.stats()["requests"]
    report("authorization matrix", f"{len(routes)} routes x {len(ROLES)} roles checked "
           f"({checked} requests)")
    assert not wrong, "\n".join(wrong)
    assert checked == len(routes) * len(ROLES)


def test_the_document_names_who_may_call_each_operation(client: Any) -> None:
    """/openapi.json says who may call what (``security`` and ``x-roles``, from each view's
    ``require``), and it agrees with the table above, which the requests check."""
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    disagree = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            key = route_key(method.upper(), path.replace("{", "<").replace("}", ">"))
            allowed = {("guest" if role == "none" else role)
                       for role, status in EXPECTED[key].items()
                       if role not in SECOND and role != "revoked" and status not in (401, 403)}
            documented = set(op.get("x-roles", []))
            public_route = allowed == {"guest", "fan", "creator", "brand", "admin"}
            if (documented or not public_route) and documented != allowed:
                disagree.append(f"{key}: document {sorted(documented)}, table {sorted(allowed)}")
            if bool(documented) != ("security" in op):
                disagree.append(f"{key}: x-roles and security disagree")
    assert not disagree, "\n".join(disagree)
