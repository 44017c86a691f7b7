"""The dashboard's sign-in rules through Flask's test client: links are made with a creator's
key only, work once, expire, cannot be forged, die with their key; the session cookie shows
its own creator's figures only; statements download with the cookie."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from pypdf import PdfReader

from payments import clock
from payments.auth import revoke_key
from payments.clock import now_ts
from payments.db import session_scope
from payments.statements import service as statements
from payments.statements.render import money
from tests.integration.dashboard.helpers import auth, creator_id, earning, read_page, signup

COOKIE = "creatorpay_dashboard"


def make_link(client: Any, key: str) -> dict[str, Any]:
    r = client.post("/v1/creators/me/dashboard_links", headers=auth(key))
    assert r.status_code == 201, r.get_data(as_text=True)
    return dict(r.get_json())


def token_of(link: dict[str, Any]) -> str:
    return parse_qs(urlparse(link["url"]).query)["token"][0]


def sign_in(client: Any, link: dict[str, Any]) -> Any:
    """What the browser does: GET the link (a button), POST it; the cookie comes back."""
    path = "/dashboard/sign-in?token=" + token_of(link)
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    assert 'id="sign-in"' in page.get_data(as_text=True)
    return client.post(path, headers={"Sec-Fetch-Site": "same-origin"})


def assert_html_error(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "text/html"
    page = read_page(r.get_data(as_text=True))
    assert page.error is not None and page.error["data-code"] == code, page.error
    assert page.figures == {}


def balance(client: Any, key: str) -> dict[str, dict[str, int]]:
    r = client.get("/v1/creators/me/balance", headers=auth(key))
    assert r.status_code == 200
    return {b["currency"]: b for b in r.get_json()["balances"]}


def test_link_signs_in_once_and_the_page_shows_the_api_balance(app: Any, client: Any) -> None:
    creator = signup(client)
    cid = creator_id(creator["id"])
    now = now_ts()
    earning(cid, "tip", 1234, 66, now)
    earning(cid, "subscription", 2000, 88, now)
    earning(cid, "tip", 5000, 0, now, currency="jpy")
    link = make_link(client, creator["api_key"])
    assert link["object"] == "dashboard_link"
    assert now <= link["expires_at"] - app.config["CREATORPAY"].dashboard_link_ttl <= now + 2
    assert creator["api_key"] not in link["url"]
    assert urlparse(link["url"]).path == "/dashboard/sign-in"

    r = sign_in(client, link)
    assert r.status_code == 303 and urlparse(r.headers["Location"]).path == "/dashboard"
    set_cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "Path=/dashboard" in set_cookie and "Max-Age=" in set_cookie

    page = client.get("/dashboard")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "no-store" in page.headers["Cache-Control"]
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none'
    figures = read_page(page.get_data(as_text=True)).figures
    api = balance(client, creator["api_key"])
    assert set(api) == {"usd", "jpy"}
    for cur, line in api.items():
        for purpose in ("pending", "available", "reserved", "in_transit", "paid_out"):
            shown = figures[(cur, purpose)]
            assert shown["amount"] == line[purpose]
            assert shown["text"] == money(line[purpose], cur)
    assert api["usd"]["pending"] > 0 and "." not in figures[("jpy", "pending")]["text"]

    # The same link again: used up, on the button page and on the POST.
    path = "/dashboard/sign-in?token=" + token_of(link)
    assert_html_error(client.get(path), 401, "dashboard_link_used")
    assert_html_error(client.post(path), 401, "dashboard_link_used")


def test_another_creators_session_never_shows_the_first_creators_figures(client: Any) -> None:
    a, b = signup(client), signup(client)
    earning(creator_id(a["id"]), "tip", 7777, 0, now_ts())
    earning(creator_id(b["id"]), "tip", 1111, 0, now_ts())
    sign_in(client, make_link(client, b["api_key"]))
    html = client.get("/dashboard").get_data(as_text=True)
    figures = read_page(html).figures
    assert figures[("usd", "pending")]["amount"] == balance(client, b["api_key"])["usd"]["pending"]
    assert figures[("usd", "pending")]["amount"] != balance(client, a["api_key"])["usd"]["pending"]
    assert a["handle"] not in html and a["id"] not in html and b["handle"] in html
    # B's cookie cannot be pointed at A: there is no creator in any dashboard path, and a
    # link token of A's is no session cookie (another salt), nor is B's cookie a link.
    token_a = token_of(make_link(client, a["api_key"]))
    client.set_cookie(COOKIE, token_a, path="/dashboard")
    assert_html_error(client.get("/dashboard"), 401, "dashboard_session_invalid")
    cookie_b = sign_in(client, make_link(client, b["api_key"])).headers["Set-Cookie"]
    value = cookie_b.split(";")[0].split("=", 1)[1]
    assert_html_error(client.get("/dashboard/sign-in?token=" + value), 401,
                      "dashboard_link_invalid")


def test_expired_link_and_expired_session_are_refused(app: Any, client: Any) -> None:
    config = app.config["CREATORPAY"]
    creator = signup(client)
    start = now_ts()
    with clock.freeze(start - config.dashboard_link_ttl - 1):
        old = make_link(client, creator["api_key"])
    assert old["expires_at"] < start
    assert_html_error(client.get("/dashboard/sign-in?token=" + token_of(old)), 401,
                      "dashboard_link_expired")
    assert_html_error(client.post("/dashboard/sign-in?token=" + token_of(old)), 401,
                      "dashboard_link_expired")
    # Just inside its lifetime it works; its session lasts dashboard_session_ttl.
    with clock.freeze(start - config.dashboard_link_ttl + 5):
        fresh = make_link(client, creator["api_key"])
    with clock.freeze(start):
        assert sign_in(client, fresh).status_code == 303
        assert client.get("/dashboard").status_code == 200
    with clock.freeze(start + config.dashboard_session_ttl + 1):
        assert_html_error(client.get("/dashboard"), 401, "dashboard_session_expired")


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # the signature
    lambda t: "x" + t,                                              # the payload
    lambda t: "",
    lambda t: "not-a-token",
])
def test_tampered_links_are_refused_with_an_html_401(client: Any, mangle: Any) -> None:
    creator = signup(client)
    token = mangle(token_of(make_link(client, creator["api_key"])))
    r = client.get("/dashboard/sign-in", query_string={"token": token})
    assert_html_error(r, 401, "dashboard_link_invalid")
    r = client.post("/dashboard/sign-in", query_string={"token": token})
    assert_html_error(r, 401, "dashboard_link_invalid")


def test_no_cookie_or_a_forged_cookie_is_an_html_401(client: Any) -> None:
    assert_html_error(client.get("/dashboard"), 401, "dashboard_session_missing")
    # The API key is never a dashboard credential, in a header or in the URL.
    key = signup(client)["api_key"]
    assert_html_error(client.get("/dashboard", headers=auth(key)), 401,
                      "dashboard_session_missing")
    assert_html_error(client.get("/dashboard/sign-in", query_string={"token": key}), 401,
                      "dashboard_link_invalid")
    client.set_cookie(COOKIE, "eyJjIjoxLCJrIjoxLCJzIjoxfQ.forged.sig", path="/dashboard")
    assert_html_error(client.get("/dashboard"), 401, "dashboard_session_invalid")
    assert_html_error(client.get("/dashboard/statements/2026-01.csv"), 401,
                      "dashboard_session_invalid")


def test_a_revoked_key_ends_its_links_and_sessions(client: Any) -> None:
    creator = signup(client)
    unused = make_link(client, creator["api_key"])
    sign_in(client, make_link(client, creator["api_key"]))
    assert client.get("/dashboard").status_code == 200
    with session_scope() as s:
        assert revoke_key(s, creator["api_key"])
    assert_html_error(client.get("/dashboard"), 401, "api_key_revoked")
    assert_html_error(client.get("/dashboard/sign-in?token=" + token_of(unused)), 401,
                      "api_key_revoked")


def test_sign_out_ends_the_session(client: Any) -> None:
    creator = signup(client)
    r = sign_in(client, make_link(client, creator["api_key"]))
    stolen = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    out = client.post("/dashboard/sign-out", headers={"Sec-Fetch-Site": "same-origin"})
    assert out.status_code == 200 and "Max-Age=0" in out.headers["Set-Cookie"]
    client.set_cookie(COOKIE, stolen, path="/dashboard")  # a copy kept elsewhere
    assert_html_error(client.get("/dashboard"), 401, "dashboard_session_expired")


def test_a_sign_in_posted_from_another_site_is_403(client: Any) -> None:
    creator = signup(client)
    link = make_link(client, creator["api_key"])
    path = "/dashboard/sign-in?token=" + token_of(link)
    assert_html_error(client.post(path, headers={"Sec-Fetch-Site": "cross-site"}), 403,
                      "cross_site_request")
    assert_html_error(client.post(path, headers={"Origin": "https://evil.example"}), 403,
                      "cross_site_request")
    assert client.post(path, headers={"Origin": "http://localhost"}).status_code == 303


def test_only_a_creator_key_makes_links(client: Any) -> None:
    r = client.post("/v1/creators/me/dashboard_links")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "missing_api_key"
    fan = client.post("/v1/fans", json={"email": "f@example.com", "display_name": "F"})
    r = client.post("/v1/creators/me/dashboard_links", headers=auth(fan.get_json()["api_key"]))
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "wrong_role"
    r = client.post("/v1/creators/me/dashboard_links", headers=auth("ck_" + "x" * 40))
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "invalid_api_key"
    r = client.get("/v1/creators/me/dashboard_links", headers=auth("ck_" + "x" * 40))
    assert r.status_code == 405


def test_statement_links_download_csv_and_pdf_with_the_cookie(client: Any) -> None:
    creator = signup(client)
    cid = creator_id(creator["id"])
    earning(cid, "tip", 2500, 103, now_ts())
    sign_in(client, make_link(client, creator["api_key"]))
    html = client.get("/dashboard").get_data(as_text=True)
    period = statements.period_of(now_ts())
    csv_href = f"/dashboard/statements/{period}.csv?currency=usd"
    pdf_href = f"/dashboard/statements/{period}.pdf?currency=usd"
    assert f'href="{csv_href}"' in html and f'href="{pdf_href}"' in html
    api = client.get(f"/v1/creators/me/statements/{period}", headers=auth(creator["api_key"]),
                     query_string={"currency": "usd"}).get_json()

    r = client.get(csv_href)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) == api["line_count"] == 3
    assert sum(int(row["amount"]) for row in rows) == (
        api["closing_balance"] - api["opening_balance"])
    api_csv = client.get(f"/v1/creators/me/statements/{period}", query_string={"currency": "usd"},
                         headers={**auth(creator["api_key"]), "Accept": "text/csv"})
    assert r.get_data() == api_csv.get_data()  # the same renderer

    r = client.get(pdf_href)
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(r.get_data())).pages)
    assert money(api["closing_balance"], "usd") in text and creator["handle"] in text

    assert_html_error(client.get("/dashboard/statements/2999-01.csv"), 404,
                      "statement_not_found")
    assert_html_error(client.get("/dashboard/statements/nope.pdf"), 404, "statement_not_found")
    assert_html_error(client.get(f"/dashboard/statements/{period}.xls"), 404, "not_found")
    assert_html_error(client.get(f"/dashboard/statements/{period}.csv?currency=xxx"), 400,
                      "invalid_request")
