"""One link, many sign-ins at once (a double click, a scanner racing the creator): exactly
one session is opened; every other answer is 401 dashboard_link_used."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import requests

from payments.config import Config
from tests.fixtures.services import serve


def test_a_link_opens_one_session_however_many_race_for_it(committed_db: Config) -> None:
    with serve(committed_db) as served:
        handle = "r_" + secrets.token_hex(4)
        r = requests.post(served.url + "/v1/creators", timeout=30, json={
            "handle": handle, "display_name": "Racer", "email": f"{handle}@example.com",
            "kind": "influencer", "country": "US", "default_currency": "usd"})
        assert r.status_code == 201, r.text
        key = r.json()["api_key"]
        link = requests.post(served.url + "/v1/creators/me/dashboard_links", timeout=30,
                             headers={"Authorization": f"Bearer {key}"}).json()

        def attempt(_: int) -> tuple[int, str]:
            answer = requests.post(link["url"], allow_redirects=False, timeout=30)
            return answer.status_code, answer.headers.get("Set-Cookie", "")

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(attempt, range(8)))
    assert sorted(status for status, _ in results) == [303] + [401] * 7, results
    assert sum(1 for _, cookie in results if cookie.startswith("creatorpay_dashboard=")) == 1
