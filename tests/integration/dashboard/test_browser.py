"""The dashboard in headless chromium, over real HTTP, with money from the real flows: tips
(API -> sandbox -> webhook -> worker -> ledger), a funded deal with one milestone released,
a renewal booked as the subscription flow books it. The test signs in through the link,
reads the figures off the rendered page, holds them to the API, and saves a screenshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select

from payments import clock
from payments.accounts.models import ApiKey
from payments.clock import now_ts
from payments.dashboard import service as dashboard
from payments.db import session_scope
from payments.statements import service as statements
from payments.statements.render import money
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.dashboard.browser import chromium
from tests.integration.dashboard.helpers import creator_id, earning
from tests.integration.deals.helpers import act, funded_deal, get_deal, new_brand
from tests.integration.payouts.helpers import mature_now, tip
from tests.integration.tips.test_flow import balances, new_creator

PURPOSES = ("pending", "available", "reserved", "in_transit", "paid_out")


def dashboard_link(live: LiveApp, key: str) -> dict[str, Any]:
    r = live.call("POST", "/v1/creators/me/dashboard_links", key)
    assert r.status_code == 201, r.text
    return dict(r.json())


def sign_in(browser: Any, url: str, screenshot: Path | None = None) -> None:
    from selenium.webdriver.common.by import By

    browser.get(url)
    if screenshot is not None:
        browser.save_screenshot(str(screenshot))
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: browser.find_elements(By.ID, "dashboard"), timeout=30)


def shown_balances(browser: Any) -> dict[str, dict[str, tuple[int, str]]]:
    """``{currency: {purpose: (data-amount, text)}}`` as rendered."""
    from selenium.webdriver.common.by import By

    out: dict[str, dict[str, tuple[int, str]]] = {}
    for el in browser.find_elements(By.CSS_SELECTOR, "#balances [data-figure]"):
        out.setdefault(el.get_attribute("data-currency"), {})[el.get_attribute(
            "data-figure")] = (int(el.get_attribute("data-amount")), el.text.strip())
    return out


def error_of(browser: Any) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    el = browser.find_element(By.ID, "error")
    return el.get_attribute("data-status"), el.get_attribute("data-code")


def test_the_dashboard_in_chromium_shows_the_api_figures(
        dashboard_stack: LiveApp, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    live = dashboard_stack
    creator = new_creator(live, "usd")
    key = creator["api_key"]
    cid = creator_id(creator["id"])

    # Money from the flows: a tip that matures (available), then more still pending: a
    # released milestone of a funded deal, a renewal, and a tip in yen.
    tip(live, creator, 2500)
    wait_for(lambda: balances(live, key).get("usd", {}).get("pending", 0) > 0, timeout=30)
    mature_now(creator, live)
    brand = new_brand(live)
    deal = funded_deal(live, brand, creator, 3000, 2000)
    m1 = deal["milestones"][0]["id"]
    act(live, key, f"/v1/deals/{deal['id']}/milestones/{m1}/submit",
        {"proof_url": "https://instagram.com/p/launch"})
    act(live, brand["api_key"], f"/v1/deals/{deal['id']}/milestones/{m1}/approve")
    earning(cid, "subscription", 1500, 74, now_ts())
    tip(live, creator, 700, "jpy")
    wait_for(lambda: balances(live, key).get("jpy", {}).get("pending", 0) > 0, timeout=30)
    api = balances(live, key)
    assert api["usd"]["available"] > 0 and api["usd"]["pending"] > 0

    link = dashboard_link(live, key)
    assert key not in link["url"]
    screenshot = tmp_path / "dashboard.png"
    with chromium() as browser:
        sign_in(browser, link["url"], tmp_path / "sign-in.png")
        # The token has left the address bar; the cookie is HttpOnly and Strict.
        assert urlparse(browser.current_url).path == "/dashboard"
        assert "token" not in browser.current_url
        cookies = {c["name"]: c for c in browser.get_cookies()}
        cookie = cookies["creatorpay_dashboard"]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"

        # Balances: every figure equals the API's, formatted by the currency's exponent.
        shown = shown_balances(browser)
        assert set(shown) == set(api) == {"usd", "jpy"}
        for cur, line in api.items():
            for purpose in PURPOSES:
                assert shown[cur][purpose] == (line[purpose], money(line[purpose], cur)), (
                    cur, purpose)
        assert "." not in shown["jpy"]["pending"][1]

        # The open deal with its escrow, as the deals API answers it.
        api_deal = get_deal(live, key, deal["id"])
        row = browser.find_element(By.CSS_SELECTOR, f'tr.deal[data-deal="{deal["id"]}"]')
        assert row.get_attribute("data-status") == api_deal["status"] == "funded"
        for figure in ("funded", "released", "remaining"):
            cell = row.find_element(By.CSS_SELECTOR, f'[data-figure="{figure}"]')
            assert int(cell.get_attribute("data-amount")) == api_deal["escrow"][figure]
            assert cell.text.startswith(money(api_deal["escrow"][figure], "usd"))
        assert api_deal["escrow"]["remaining"] == 2000

        # The chart's bars for this month are the statement's earnings by kind.
        period = statements.period_of(live.sandbox.now())
        st = live.call("GET", f"/v1/creators/me/statements/{period}", key,
                       params={"currency": "usd"}).json()
        assert st["tips"] > 0 and st["subscriptions"] == 1500 and st["deals"] == 3000
        for kind in ("tips", "subscriptions", "deals"):
            bar = browser.find_element(
                By.CSS_SELECTOR,
                f'#chart-usd rect[data-period="{period}"][data-kind="{kind}"]')
            assert int(bar.get_attribute("data-amount")) == st[kind]
            assert int(bar.get_attribute("height")) > 0
        # The tallest bar is the largest figure; the others scale to it.
        heights = {k: int(browser.find_element(
            By.CSS_SELECTOR, f'#chart-usd rect[data-period="{period}"][data-kind="{k}"]'
        ).get_attribute("height")) for k in ("tips", "subscriptions", "deals")}
        biggest = max(("tips", "subscriptions", "deals"), key=lambda k: st[k])
        assert heights[biggest] == max(heights.values())

        # Recent activity lists the creator's newest ledger lines.
        newest = live.call("GET", "/v1/creators/me/ledger", key, params={"limit": 3}).json()
        rows = browser.find_elements(By.CSS_SELECTOR, "#activity tr.entry")
        assert [r.get_attribute("data-entry") for r in rows[:3]] == [
            e["id"] for e in newest["data"]]

        # Statement links work with the cookie (fetched inside the page's session).
        href = browser.find_element(
            By.CSS_SELECTOR, f'tr.statement[data-period="{period}"][data-currency="usd"] a.csv'
        ).get_attribute("href")
        assert urlparse(href).path == f"/dashboard/statements/{period}.csv"

        # The whole page in the picture: the window as tall as the page.
        height = browser.find_element(By.TAG_NAME, "body").rect["height"]
        browser.set_window_size(1280, int(height) + 140)
        browser.save_screenshot(str(screenshot))
        print(f"\ndashboard screenshot: {screenshot}")
        assert screenshot.stat().st_size > 10_000

        # Another creator's link, in the same browser: their own figures, never these.
        other = new_creator(live, "usd")
        tip(live, other, 900)
        wait_for(lambda: balances(live, other["api_key"]).get("usd", {}).get("pending", 0) > 0,
                 timeout=30)
        sign_in(browser, dashboard_link(live, other["api_key"])["url"])
        theirs = shown_balances(browser)
        other_api = balances(live, other["api_key"])
        assert set(theirs) == {"usd"}
        assert {p: theirs["usd"][p][0] for p in PURPOSES} == {
            p: other_api["usd"][p] for p in PURPOSES}
        assert theirs["usd"]["pending"][0] != api["usd"]["pending"]
        page = browser.page_source
        assert creator["handle"] not in page and deal["id"] not in page

        # An expired link (made on the test clock, one lifetime ago) is refused.
        with session_scope() as s:
            key_id = s.scalar(select(ApiKey.id).where(ApiKey.lookup == key[:12]))
        assert key_id is not None
        with (clock.freeze(now_ts() - live.config.dashboard_link_ttl - 5),
              session_scope() as s):
            old = dashboard.make_link(s, live.config, cid, key_id)
        browser.get(f"{live.url}/dashboard/sign-in?token={old.token}")
        assert error_of(browser) == ("401", "dashboard_link_expired")
        browser.save_screenshot(str(tmp_path / "expired.png"))
        assert "expired" in browser.find_element(By.TAG_NAME, "h1").text
        assert browser.find_elements(By.ID, "sign-in") == []
        # And the used link of the first creator stays used.
        browser.get(link["url"])
        assert error_of(browser) == ("401", "dashboard_link_used")
