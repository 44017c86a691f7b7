from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from payments.accounts.models import ApiKey, Brand, Creator, Fan
from payments.auth import issue_key, revoke_key

CREATOR = {
    "handle": "dr_ann",
    "display_name": "Dr Ann",
    "email": "ann@example.com",
    "kind": "kol",
    "country": "us",
    "default_currency": "USD",
    "profession": "doctor",
}


def signup(client: Any, **overrides: Any) -> dict[str, Any]:
    r = client.post("/v1/creators", json={**CREATOR, **overrides})
    assert r.status_code == 201, r.json
    return dict(r.json)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def count(db_session: Any, model: Any) -> int:
    return int(db_session.scalar(select(func.count()).select_from(model)))


def test_creator_signup_shows_key_once_and_stores_only_its_digest(client: Any, db_session: Any) -> None:
    body = signup(client)
    assert body["id"].startswith("cr_")
    assert body["api_key"].startswith("ck_")
    assert body["country"] == "US" and body["default_currency"] == "usd"
    stored = db_session.scalars(select(ApiKey)).all()
    assert len(stored) == 1
    assert body["api_key"] not in (stored[0].digest, stored[0].lookup)
    me = client.get("/v1/creators/me", headers=auth(body["api_key"]))
    assert me.status_code == 200 and "api_key" not in me.json
    assert me.json["email"] == "ann@example.com"


def test_public_profile_never_shows_email(client: Any) -> None:
    body = signup(client)
    for ref in ("dr_ann", body["id"]):
        r = client.get(f"/v1/creators/{ref}")
        assert r.status_code == 200
        assert "email" not in r.json and r.json["handle"] == "dr_ann"
    r = client.get("/v1/creators/nobody_here")
    assert r.status_code == 404 and r.json["error"]["code"] == "creator_not_found"


def test_fan_and_brand_signup(client: Any) -> None:
    fan = client.post("/v1/fans", json={"email": "f@example.com", "display_name": "Fan"})
    assert fan.status_code == 201 and fan.json["api_key"].startswith("fk_")
    assert fan.json["id"].startswith("fan_")
    brand = client.post("/v1/brands", json={"name": "Acme", "email": "b@example.com", "country": "de"})
    assert brand.status_code == 201 and brand.json["api_key"].startswith("bk_")
    assert brand.json["id"].startswith("br_") and brand.json["country"] == "DE"


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"handle": "ab"}, "handle"),
        ({"handle": "Bad-Handle"}, "handle"),
        ({"handle": "x" * 31}, "handle"),
        ({"kind": "celebrity"}, "kind"),
        ({"kind": "kol", "profession": None}, "profession"),
        ({"default_currency": "xyz"}, "default_currency"),
        ({"default_currency": "kwd"}, "default_currency"),
        ({"country": "USA"}, "country"),
        ({"email": "not-an-email"}, "email"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_signup_is_400_with_param_and_writes_nothing(
    client: Any, db_session: Any, overrides: dict[str, Any], param: str
) -> None:
    body = {**CREATOR, **overrides}
    body = {k: v for k, v in body.items() if v is not None}
    r = client.post("/v1/creators", json=body)
    assert r.status_code == 400, r.json
    assert r.json["error"]["code"] == "invalid_request"
    assert r.json["error"]["param"] == param
    assert count(db_session, Creator) == 0 and count(db_session, ApiKey) == 0


def test_duplicate_handle_is_409(client: Any, db_session: Any) -> None:
    signup(client)
    r = client.post("/v1/creators", json={**CREATOR, "email": "other@example.com"})
    assert r.status_code == 409 and r.json["error"]["code"] == "handle_taken"
    assert count(db_session, Creator) == 1


def test_envelope_errors_in_contract_order(client: Any, db_session: Any) -> None:
    r = client.get("/v1/no-such-thing")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    r = client.delete("/v1/creators")
    assert r.status_code == 405 and r.json["error"]["code"] == "method_not_allowed"
    r = client.post("/v1/creators", data="handle=x", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415 and r.json["error"]["code"] == "unsupported_media_type"
    r = client.post("/v1/creators", data="{not json", content_type="application/json")
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_request"
    big = '{"handle": "' + "x" * (1024 * 1024) + '"}'
    r = client.post("/v1/creators", data=big, content_type="application/json")
    assert r.status_code == 413 and r.json["error"]["code"] == "payload_too_large"
    # Envelope before auth: a wrong content type on an authenticated route is 415, not 401.
    r = client.patch("/v1/creators/me", data="x", content_type="text/plain")
    assert r.status_code == 415
    assert count(db_session, Creator) == 0


@pytest.mark.parametrize(
    "value", [1500.0, 1.5e3, True, "1500", -100, 0, None, 10**16]
)
def test_amounts_must_be_positive_json_integers(client: Any, value: Any) -> None:
    key = signup(client)["api_key"]
    r = client.patch("/v1/creators/me", json={"min_tip_amount": value, "suggested_amounts": [value]}, headers=auth(key))
    assert r.status_code == 400, (value, r.json)
    assert r.json["error"]["param"] in ("min_tip_amount", "suggested_amounts.0")
    me = client.get("/v1/creators/me", headers=auth(key)).json
    assert me["tip_settings"]["min_tip_amount"] == 50
    assert me["tip_settings"]["suggested_amounts"] == []


def test_amounts_as_raw_json_text_with_fraction_or_exponent(client: Any) -> None:
    key = signup(client)["api_key"]
    for raw in ('{"min_tip_amount": 1500.0}', '{"min_tip_amount": 1.5e3}', '{"min_tip_amount": 15e2}'):
        r = client.patch("/v1/creators/me", data=raw, content_type="application/json", headers=auth(key))
        assert r.status_code == 400, raw


def test_tip_settings_update_and_minimum_below_stripe_minimum(client: Any) -> None:
    key = signup(client)["api_key"]
    r = client.patch(
        "/v1/creators/me",
        json={"min_tip_amount": 300, "suggested_amounts": [300, 500, 1000], "tip_goal": {"amount": 50000, "title": "New mic"}},
        headers=auth(key),
    )
    assert r.status_code == 200
    settings = r.json["tip_settings"]
    assert settings["min_tip_amount"] == 300 and settings["suggested_amounts"] == [300, 500, 1000]
    assert settings["tip_goal"]["amount"] == 50000 and settings["tip_goal"]["progress"] == 0
    r = client.patch("/v1/creators/me", json={"min_tip_amount": 10}, headers=auth(key))
    assert r.status_code == 400 and r.json["error"]["code"] == "amount_too_small"


def test_auth_missing_malformed_revoked_and_wrong_role(client: Any, db_session: Any) -> None:
    key = signup(client)["api_key"]
    r = client.get("/v1/creators/me")
    assert r.status_code == 401 and r.json["error"]["code"] == "missing_api_key"
    r = client.get("/v1/creators/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and r.json["error"]["code"] == "invalid_authorization_header"
    r = client.get("/v1/creators/me", headers=auth("zz_nothing"))
    assert r.status_code == 401 and r.json["error"]["code"] == "invalid_api_key"
    r = client.get("/v1/creators/me", headers=auth(key[:-1] + ("A" if key[-1] != "A" else "B")))
    assert r.status_code == 401 and r.json["error"]["code"] == "invalid_api_key"
    fan_key = client.post("/v1/fans", json={"email": "f@example.com", "display_name": "F"}).json["api_key"]
    r = client.get("/v1/creators/me", headers=auth(fan_key))
    assert r.status_code == 403 and r.json["error"]["code"] == "wrong_role"
    assert revoke_key(db_session, key)
    db_session.commit()
    r = client.get("/v1/creators/me", headers=auth(key))
    assert r.status_code == 401 and r.json["error"]["code"] == "api_key_revoked"


def test_each_creator_sees_only_their_own_account(client: Any) -> None:
    a = signup(client)
    b = signup(client, handle="teacher_bo", email="bo@example.com", kind="influencer", profession=None)
    me_a = client.get("/v1/creators/me", headers=auth(a["api_key"])).json
    me_b = client.get("/v1/creators/me", headers=auth(b["api_key"])).json
    assert me_a["id"] == a["id"] and me_b["id"] == b["id"]
    client.patch("/v1/creators/me", json={"min_tip_amount": 999}, headers=auth(b["api_key"]))
    assert client.get("/v1/creators/me", headers=auth(a["api_key"])).json["tip_settings"]["min_tip_amount"] == 50


def test_admin_key_issued_by_service_is_admin(client: Any, db_session: Any) -> None:
    key = issue_key(db_session, "admin", None)
    db_session.commit()
    assert key.startswith("ak_")
    r = client.get("/v1/creators/me", headers=auth(key))
    assert r.status_code == 403
    assert count(db_session, Fan) == 0 and count(db_session, Brand) == 0


def test_health_and_openapi(client: Any) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"] == {"database": "ok", "broker": "ok"}
    spec = client.get("/openapi.json").json
    assert "/v1/creators" in spec["paths"]
    assert "Error" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_list_query_parameters_are_validated(client: Any) -> None:
    key = signup(client)["api_key"]
    for query in ("limit=0", "limit=101", "limit=abc", "colour=blue"):
        r = client.get(f"/v1/creators/me/tips?{query}", headers=auth(key))
        assert r.status_code == 400, (query, r.json)
        assert r.json["error"]["code"] == "invalid_request"
    assert client.get("/v1/creators/me/tips?limit=100", headers=auth(key)).status_code == 200


def test_openapi_documents_every_route_and_the_error_shape(app: Any, client: Any) -> None:
    spec = client.get("/openapi.json").json
    documented = {
        (path, method.upper()) for path, ops in spec["paths"].items() for method in ops
        if method != "parameters"
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "_swagger_asset") or rule.rule.startswith(("/docs", "/openapi")):
            continue
        if rule.endpoint.startswith("dashboard_pages."):
            continue  # the dashboard's HTML pages (docs/api.md), not API operations
        path = rule.rule.replace("<string:", "{").replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert served == documented
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method != "parameters":
                assert "default" in op["responses"], (path, method)
    assert spec["components"]["responses"]["DEFAULT_ERROR"]["content"]["application/json"][
        "schema"]["$ref"] == "#/components/schemas/Error"
    assert "422" not in str(spec["paths"])
