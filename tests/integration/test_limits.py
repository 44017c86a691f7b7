"""Rate limits: per IP on sign-up, per API key and per IP on money-moving routes; ``429`` in
the contract's error shape with ``Retry-After``; reads are never limited."""

from __future__ import annotations

from typing import Any

import pytest

from payments.config import Config
from payments.limits import RULES
from tests.fixtures.summary import count


def rule(name: str) -> Any:
    [found] = [r for r in RULES if r.name == name]
    return found


def budget(limit: str) -> int:
    return int(limit.split()[0])


@pytest.fixture
def limited_client(base_config: Config, db_session: Any) -> Any:
    from payments import create_app

    config = base_config.with_overrides(rate_limits=True, rate_limit_storage="memory://")
    return create_app(config).test_client()


def post(client: Any, path: str, ip: str, key: str | None = None,
         body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = client.post(path, json=body if body is not None else {}, headers=headers,
                    environ_base={"REMOTE_ADDR": ip})
    count("rate limits: requests sent")
    if r.status_code == 429:
        count("rate limits: requests refused with 429")
    return r


def assert_limited(r: Any) -> None:
    assert r.status_code == 429, r.get_data(as_text=True)
    error = r.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert "Retry in" in error["message"]
    assert int(r.headers["Retry-After"]) >= 1


def test_signup_is_limited_per_ip_across_roles(limited_client: Any) -> None:
    allowed = budget(rule("signup").per_ip)
    for i in range(allowed):
        path = ("/v1/fans", "/v1/brands", "/v1/creators")[i % 3]
        r = post(limited_client, path, "10.9.0.1")  # an empty body: 400, but counted
        assert r.status_code == 400, (i, r.get_data(as_text=True))
    assert_limited(post(limited_client, "/v1/fans", "10.9.0.1"))
    assert_limited(post(limited_client, "/v1/creators", "10.9.0.1"))
    # Another client is not held back, and reads are never limited.
    assert post(limited_client, "/v1/fans", "10.9.0.2").status_code == 400
    assert limited_client.get("/healthz", environ_base={"REMOTE_ADDR": "10.9.0.1"}).status_code == 200


def test_tips_are_limited_per_key_then_per_ip(limited_client: Any) -> None:
    fans = []
    for i in range(3):
        r = post(limited_client, "/v1/fans", f"10.8.0.{i + 1}",
                 body={"email": f"rl{i}@example.com", "display_name": "Rate Limited"})
        assert r.status_code == 201, r.get_data(as_text=True)
        fans.append(r.get_json()["api_key"])
    per_key = budget(rule("tips").per_key)
    per_ip = budget(rule("tips").per_ip)
    assert per_ip == 2 * per_key  # two keys exhaust one IP in this test
    for _ in range(per_key):
        assert post(limited_client, "/v1/tips", "10.8.1.1", fans[0]).status_code == 400
    assert_limited(post(limited_client, "/v1/tips", "10.8.1.1", fans[0]))
    # The key's budget is its own: the same key from another IP is still refused ...
    assert_limited(post(limited_client, "/v1/tips", "10.8.1.2", fans[0]))
    # ... and another key from the same IP is served until the IP's budget runs out (a
    # refused request uses none of it); then every key from that IP is refused.
    for _ in range(per_ip - per_key):
        assert post(limited_client, "/v1/tips", "10.8.1.1", fans[1]).status_code == 400
    assert_limited(post(limited_client, "/v1/tips", "10.8.1.1", fans[2]))
    assert post(limited_client, "/v1/tips", "10.8.1.4", fans[2]).status_code == 400
    # Guests (no key) count against their IP.
    assert post(limited_client, "/v1/tips", "10.8.1.3").status_code == 400


def test_rules_cover_the_routes_they_name(app: Any) -> None:
    """Every rule limits at least one route this app serves (a renamed route would slip out),
    and no GET route is limited."""
    rules = [r.rule for r in app.url_map.iter_rules()]
    for limit_rule in RULES:
        if limit_rule.name in ("signup", "tips", "connect"):
            assert any(limit_rule.covers(r) for r in rules), limit_rule
    assert all("GET" not in r.methods for r in RULES)
