"""Issue 14's remaining bullets: webhook secret rotation without downtime, keys and secrets
never shown after creation, the maximum tip refused with its reason, no NUL in client text.
(The authorization matrix, schemathesis and the rate limits have their own modules.)"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import func, select

from payments.config import Config, load_config
from payments.gateway import sign_payload
from payments.tips.models import Tip
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import sandbox_config
from tests.fixtures.world import creator_body, fan_body
from webhooks.models import WebhookEvent
from webhooks.routes import route_table

# ------------------------------------------------------------------ webhook secret rotation


def _event() -> tuple[str, bytes]:
    event_id = "evt_rotate_" + secrets.token_hex(8)
    kind = sorted(route_table().handled_types)[0]
    body = json.dumps({"id": event_id, "object": "event", "type": kind,
                       "created": int(time.time()), "livemode": False,
                       "data": {"object": {"id": "ch_rotate", "object": "charge"}}}).encode()
    return event_id, body


def _deliver(client: Any, body: bytes, secret: str) -> Any:
    return client.post("/webhooks/stripe", data=body, content_type="application/json",
                       headers={"Stripe-Signature": sign_payload(body, secret)})


def _stored(db_session: Any, event_id: str) -> int:
    return int(db_session.scalar(select(func.count()).select_from(WebhookEvent)
                                 .where(WebhookEvent.stripe_id == event_id)) or 0)


@pytest.fixture
def no_drain() -> Iterator[None]:
    with mock.patch("webhooks.endpoint.notifier"):  # only the answer and the row are tested
        yield


def test_webhook_secret_rotation_without_downtime(base_config: Config, db_session: Any,
                                                  no_drain: None) -> None:
    """Rotating Stripe's endpoint secret: configure ``new,old`` (CREATORPAY_STRIPE_WEBHOOK_SECRET
    takes several), roll Stripe over, then drop the old one. Every step accepts what Stripe
    may sign with at that moment, and nothing signed with another secret."""
    from payments import create_app

    old, new, stranger = ("whsec_" + secrets.token_hex(16) for _ in range(3))

    def app_with(value: str) -> Any:
        configured = load_config({"CREATORPAY_STRIPE_WEBHOOK_SECRET": value})
        return create_app(base_config.with_overrides(
            stripe_webhook_secrets=configured.stripe_webhook_secrets)).test_client()

    before, during, after = app_with(old), app_with(f"{new}, {old}"), app_with(new)
    for client, accepted, refused in ((before, [old], [new, stranger]),
                                      (during, [old, new], [stranger]),
                                      (after, [new], [old, stranger])):
        for secret in accepted:
            event_id, body = _event()
            r = _deliver(client, body, secret)
            assert r.status_code == 200 and r.get_json() == {"received": True, "stored": True}
            assert _stored(db_session, event_id) == 1
        for secret in refused:
            event_id, body = _event()
            r = _deliver(client, body, secret)
            assert r.status_code == 400, r.get_data(as_text=True)
            assert r.get_json()["error"]["code"] == "invalid_signature"
            assert _stored(db_session, event_id) == 0


# ------------------------------------------------------------------ secrets never shown again


SECRET_NAMES = ("api_key", "secret_key", "webhook_secret", "digest")


def _property_names(schema: Any, components: dict[str, Any], seen: set[str]) -> set[str]:
    """Every property name reachable from a response schema of the OpenAPI document."""
    if isinstance(schema, list):
        return set().union(*(_property_names(s, components, seen) for s in schema))
    if not isinstance(schema, dict):
        return set()
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return set()
        seen.add(name)
        return _property_names(components[name], components, seen)
    names = set(schema.get("properties", {}))
    for value in schema.values():
        names |= _property_names(value, components, seen)
    return names


def test_no_read_documents_a_key_or_secret(client: Any) -> None:
    """Keys are shown once, in the sign-up answer: no GET, PATCH or action answer of the
    document has a field for a key or a secret (Stripe's ``client_secret`` for the payer
    aside, which is the payer's own)."""
    spec = client.get("/openapi.json").get_json()
    components = spec["components"]["schemas"]
    shown: dict[str, set[str]] = {}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            for status, response in op["responses"].items():
                names = _property_names(response.get("content", {}), components, set())
                leaked = {n for n in names if any(word in n for word in SECRET_NAMES)}
                if leaked:
                    shown.setdefault(f"{method.upper()} {path} {status}", set()).update(leaked)
    signups = {f"POST /v1/{kind} 201" for kind in ("creators", "fans", "brands")}
    assert set(shown) == signups, shown
    assert all(names == {"api_key"} for names in shown.values()), shown


def test_a_key_is_in_its_sign_up_answer_only(client: Any) -> None:
    body = client.post("/v1/creators", json=creator_body()).get_json()
    key = body["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    for path in ("/v1/creators/me", f"/v1/creators/{body['handle']}",
                 "/v1/creators/me/payout-settings"):
        r = client.get(path, headers=auth)
        assert r.status_code == 200, r.get_data(as_text=True)
        assert key not in r.get_data(as_text=True) and "api_key" not in r.get_json()
    # (The authorization matrix checks every answer of every route for every world key.)


# ------------------------------------------------------------------ the maximum tip


@pytest.fixture
def capped(base_config: Config, db_session: Any,
           private_sandbox: SandboxHandle) -> Iterator[tuple[Any, SandboxHandle]]:
    from payments import clock, create_app

    followed = clock._remote_url  # noqa: SLF001 - create_app makes the clock follow config's
    config = sandbox_config(base_config, private_sandbox).with_overrides(max_tip_amount=5_000)
    try:
        yield create_app(config).test_client(), private_sandbox
    finally:
        clock.follow(followed)


@pytest.mark.parametrize(("currency", "shown"), [("usd", "50.00 USD"), ("jpy", "5000 JPY")])
def test_a_tip_over_the_maximum_is_refused_with_the_maximum_named(
        capped: tuple[Any, SandboxHandle], db_session: Any, currency: str, shown: str) -> None:
    client, sandbox = capped
    creator = client.post("/v1/creators", json=creator_body()).get_json()
    fan = client.post("/v1/fans", json=fan_body()).get_json()
    auth = {"Authorization": f"Bearer {fan['api_key']}"}
    tip = {"creator": creator["handle"], "currency": currency, "payment_method": "pm_card_visa"}
    calls = sandbox.stats()["requests"]

    r = client.post("/v1/tips", headers=auth, json={**tip, "amount": 5_001})
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert (error["code"], error["param"]) == ("amount_too_large", "amount")
    assert shown in error["message"] and "5000 in minor units" in error["message"]
    assert "5001" in error["message"]
    assert db_session.scalar(select(func.count()).select_from(Tip)) == 0
    assert sandbox.stats()["requests"] == calls  # Stripe never asked

    r = client.post("/v1/tips", headers=auth, json={**tip, "amount": 5_000})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["amount"] == 5_000


# ------------------------------------------------------------------ NUL characters


def test_nul_characters_are_refused_never_a_500(client: Any) -> None:
    """PostgreSQL refuses NUL in text; we refuse it first, as the client's mistake."""
    r = client.post("/v1/fans", json={"email": "nul@example.com", "display_name": "A\x00B"})
    assert r.status_code == 400
    assert r.get_json()["error"]["param"] == "display_name"
    body = client.post("/v1/creators", json=creator_body()).get_json()
    auth = {"Authorization": f"Bearer {body['api_key']}"}
    r = client.patch("/v1/creators/me", headers=auth, json={"tip_goal": {
        "amount": 5_000, "title": "x\x00"}})
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "tip_goal.title"
    r = client.get("/v1/creators/me/tips", headers=auth,
                   query_string={"starting_after": "tip_\x00"})
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "starting_after"
    r = client.get("/v1/tips/tip_%00x", headers=auth)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = client.get("/v1/creators/%00")
    assert r.status_code == 404


def test_a_signed_event_whose_id_holds_a_nul_is_400(client: Any, base_config: Config,
                                                   db_session: Any, no_drain: None) -> None:
    event_id, body = _event()
    bad = body.replace(event_id.encode(), (event_id + "\\u0000").encode())
    r = _deliver(client, bad, base_config.stripe_webhook_secrets[0])
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_payload"
    assert db_session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
