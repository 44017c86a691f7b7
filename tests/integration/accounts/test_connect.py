from __future__ import annotations

from tests.fixtures.live import LiveApp
from tests.integration.tips.test_flow import new_creator


def test_connect_creates_one_account_and_a_fresh_link_each_time(live_app: LiveApp) -> None:
    creator = new_creator(live_app)
    key = creator["api_key"]
    first = live_app.call("POST", "/v1/creators/me/connect", key)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["account_id"].startswith("acct_") and body["onboarding_url"].startswith("http")
    again = live_app.call("POST", "/v1/creators/me/connect", key).json()
    assert again["account_id"] == body["account_id"]
    me = live_app.call("GET", "/v1/creators/me", key).json()
    assert me["stripe_account_id"] == body["account_id"]
    assert live_app.sandbox.count("account", {"creator_id": creator["id"]}) == 1


def test_connect_needs_a_creator_key(live_app: LiveApp) -> None:
    r = live_app.call("POST", "/v1/creators/me/connect")
    assert r.status_code == 401
