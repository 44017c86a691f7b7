"""Every transition checked: the wrong role is 403, another party's deal 404, bad input 400,
the wrong state 409 invalid_transition, in that order; a refused action changes nothing."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import select

from payments.auth import issue_key
from payments.clock import now_ts
from payments.deals import service
from payments.deals.models import Deal
from payments.ledger import service as ledger
from tests.integration.deals.helpers import milestones

ROLES = ("brand", "creator", "fan", "admin", "other_brand", "other_creator")
# action -> (roles that may ever do it, path suffix, a valid body)
ACTIONS: dict[str, tuple[frozenset[str], str, dict[str, Any]]] = {
    "accept": (frozenset({"creator"}), "accept", {}),
    "decline": (frozenset({"creator"}), "decline", {"reason": "busy"}),
    "fund": (frozenset({"brand"}), "fund", {"payment_method": "pm_card_visa"}),
    "submit": (frozenset({"creator"}), "milestones/{ms}/submit", {"proof_url": "https://x.com/1"}),
    "request_changes": (frozenset({"brand"}), "milestones/{ms}/request_changes", {"note": "n"}),
    "approve": (frozenset({"brand"}), "milestones/{ms}/approve", {}),
    "cancel": (frozenset({"brand", "creator"}), "cancel", {"reason": "r"}),
    "dispute": (frozenset({"brand", "creator"}), "dispute", {"reason": "r"}),
    "resolve": (frozenset({"admin"}), "resolve", {"creator_amount": 1, "brand_refund_amount": 0}),
}
# What may legally happen in each state (those are exercised elsewhere, with Stripe).
LEGAL = {
    "proposed": {"accept", "decline", "cancel"},
    "accepted": {"fund", "cancel"},
    "declined": set(),
    "canceled": set(),
    "funding": {"fund", "cancel"},
    "funded": {"submit", "cancel", "dispute"},
    "funded_submitted": {"request_changes", "approve", "cancel", "dispute"},
    "disputed": {"resolve"},
    "completed": set(),
    "resolved": set(),
}
# The role matched to the principal that owns it (other_* are the same roles, other parties).
ROLE_OF = {"other_brand": "brand", "other_creator": "creator"}


def _party(client: Any, kind: str) -> dict[str, Any]:
    tok = secrets.token_hex(4)
    if kind == "brand":
        body: dict[str, Any] = {"name": "B" + tok, "email": f"b{tok}@example.com", "country": "US"}
        r = client.post("/v1/brands", json=body)
    elif kind == "creator":
        body = {"handle": "c_" + tok, "display_name": "C", "email": f"c{tok}@example.com",
                "kind": "influencer", "country": "US", "default_currency": "usd"}
        r = client.post("/v1/creators", json=body)
    else:
        r = client.post("/v1/fans", json={"email": f"f{tok}@example.com", "display_name": "F"})
    assert r.status_code == 201, r.get_data(as_text=True)
    return dict(r.get_json())


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _fund(session: Any, deal: Deal) -> None:
    tok = secrets.token_hex(6)
    ledger.post_many(session, service.funding_succeeded(
        session, deal, {"id": "ch_" + tok, "payment_intent": "pi_" + tok, "captured": True},
        {"id": "txn_" + tok, "amount": deal.amount, "fee": 120, "currency": deal.currency,
         "created": now_ts()}))


def build(client: Any, session: Any, state: str) -> tuple[str, str, dict[str, str]]:
    """A deal in ``state``; its id, its first milestone's id and a key per role."""
    brand, creator = _party(client, "brand"), _party(client, "creator")
    keys = {"brand": brand["api_key"], "creator": creator["api_key"],
            "fan": _party(client, "fan")["api_key"],
            "other_brand": _party(client, "brand")["api_key"],
            "other_creator": _party(client, "creator")["api_key"],
            "admin": issue_key(session, "admin", None)}
    session.commit()
    r = client.post("/v1/deals", headers=_auth(keys["brand"]), json={
        "creator": creator["handle"], "title": "T", "brief": "B", "currency": "usd",
        "milestones": milestones(3_000, 4_000)})
    assert r.status_code == 201, r.get_data(as_text=True)
    deal_id, ms = r.get_json()["id"], r.get_json()["milestones"][0]["id"]
    deal = session.scalar(select(Deal).where(Deal.public_id == deal_id))
    b = service.Actor("brand", deal.brand_id, brand["id"])
    c = service.Actor("creator", deal.creator_id, creator["id"])
    admin = service.Actor("admin", None, "admin")
    if state == "proposed":
        pass
    elif state == "declined":
        service.decline(session, deal, c, None)
    elif state == "canceled":
        service.cancel(session, deal, b, None)
    else:
        service.accept(session, deal, c)
        if state != "accepted":
            service.start_funding(session, deal, b)
            if state != "funding":
                _fund(session, deal)
                mss = service.milestones_of(session, deal)
                if state in ("funded_submitted", "completed"):
                    service.submit(session, deal, mss[0], c, "https://x.com/p", None)
                if state == "completed":
                    service.approve(session, deal, mss[0], b)
                    service.submit(session, deal, mss[1], c, "https://x.com/q", None)
                    service.approve(session, deal, mss[1], b)
                if state in ("disputed", "resolved"):
                    service.open_dispute(session, deal, c, "no")
                if state == "resolved":
                    service.resolve(session, deal, admin, service.remaining(deal), 0)
    session.commit()
    expected = "funded" if state == "funded_submitted" else state
    assert session.scalar(select(Deal.status).where(Deal.public_id == deal_id)) == expected
    return deal_id, ms, keys


def _path(deal_id: str, action: str, ms: str) -> str:
    suffix = ACTIONS[action][1].format(ms=ms)
    prefix = "/v1/admin/deals" if action == "resolve" else "/v1/deals"
    return f"{prefix}/{deal_id}/{suffix}"


@pytest.mark.parametrize("state", list(LEGAL))
def test_every_illegal_transition_for_every_role(client: Any, db_session: Any,
                                                 state: str) -> None:
    deal_id, ms, keys = build(client, db_session, state)
    before = client.get(f"/v1/deals/{deal_id}", headers=_auth(keys["brand"])).get_json()
    checked = 0
    for action, (allowed, _, body) in ACTIONS.items():
        for who in ROLES:
            role = ROLE_OF.get(who, who)
            if role not in allowed:
                want, code = 403, "wrong_role"
            elif who.startswith("other_"):
                want, code = 404, "deal_not_found"
            elif action in LEGAL[state]:
                continue
            else:
                want, code = 409, "invalid_transition"
            r = client.post(_path(deal_id, action, ms), headers=_auth(keys[who]), json=body)
            assert (r.status_code, r.get_json()["error"]["code"]) == (want, code), (
                state, action, who, r.get_json())
            checked += 1
    assert checked >= 40
    after = client.get(f"/v1/deals/{deal_id}", headers=_auth(keys["brand"])).get_json()
    assert after == before  # nothing refused wrote anything
    # Reading: its parties and admins; a fan never; another party's deal is not found.
    for who, want in (("brand", 200), ("creator", 200), ("admin", 200), ("fan", 403),
                      ("other_brand", 404), ("other_creator", 404)):
        assert client.get(f"/v1/deals/{deal_id}", headers=_auth(keys[who])).status_code == want


def test_order_of_checks(client: Any, db_session: Any) -> None:
    deal_id, ms, keys = build(client, db_session, "completed")
    bad = {"bogus": 1}
    cases = [
        (None, "fund", bad, 401, "missing_api_key"),
        ("creator", "fund", bad, 403, "wrong_role"),  # role before the path's objects
        ("other_brand", "fund", bad, 404, "deal_not_found"),  # objects before input
        ("brand", "fund", bad, 400, "invalid_request"),  # input before state
        ("brand", "fund", {}, 409, "invalid_transition"),
        ("admin", "resolve", {"creator_amount": 1.5, "brand_refund_amount": 0}, 400,
         "invalid_request"),
        ("creator", "submit", {"proof_url": "not a url"}, 400, "invalid_request"),
    ]
    for who, action, body, status, code in cases:
        headers = _auth(keys[who]) if who else {}
        r = client.post(_path(deal_id, action, ms), headers=headers, json=body)
        assert (r.status_code, r.get_json()["error"]["code"]) == (status, code), (who, action)
    r = client.post(f"/v1/deals/{deal_id}/milestones/ms_nope/approve",
                    headers=_auth(keys["brand"]), json={})
    assert (r.status_code, r.get_json()["error"]["code"]) == (404, "milestone_not_found")
    r = client.post("/v1/deals/deal_nope/accept", headers=_auth(keys["creator"]), json={})
    assert r.status_code == 404
    assert client.delete(f"/v1/deals/{deal_id}", headers=_auth(keys["brand"])).status_code == 405


@pytest.mark.parametrize(("change", "param"), [
    ({"currency": "xyz"}, "currency"),
    ({"milestones": []}, "milestones"),
    ({"review_days": 0}, "review_days"),
    ({"review_days": 7.0}, "review_days"),
    ({"milestones": [{"title": "t", "platform": "myspace", "deliverable": "d", "amount": 500,
                      "due_date": "2027-01-01"}]}, "milestones.0.platform"),
    ({"milestones": [{"title": "t", "platform": "x", "deliverable": "d", "amount": 500.0,
                      "due_date": "2027-01-01"}]}, "milestones.0.amount"),
    ({"milestones": [{"title": "t", "platform": "x", "deliverable": "d", "amount": 500,
                      "due_date": "01/02/2027"}]}, "milestones.0.due_date"),
    ({"milestones": [{"title": "t", "platform": "x", "deliverable": "d", "amount": 10,
                      "due_date": "2027-01-01"}]}, "milestones"),
    ({"extra": True}, "extra"),
    ({"creator": "nobody_zzzzzz"}, "creator"),
])
def test_bad_proposals_are_refused(client: Any, db_session: Any, change: dict[str, Any],
                                   param: str) -> None:
    brand, creator = _party(client, "brand"), _party(client, "creator")
    body = {"creator": creator["handle"], "title": "T", "brief": "B", "currency": "usd",
            "milestones": milestones(3_000), **change}
    r = client.post("/v1/deals", headers=_auth(brand["api_key"]), json=body)
    want = 404 if param == "creator" else 400
    assert r.status_code == want, r.get_json()
    assert r.get_json()["error"]["param"] == param
    assert client.get("/v1/deals", headers=_auth(brand["api_key"])).get_json()["data"] == []


def test_lists_page_and_filter(client: Any, db_session: Any) -> None:
    brand, creator = _party(client, "brand"), _party(client, "creator")
    other = _party(client, "creator")
    ids = []
    for who in (creator, other, creator, creator):
        r = client.post("/v1/deals", headers=_auth(brand["api_key"]), json={
            "creator": who["id"], "title": "T", "brief": "B", "currency": "usd",
            "milestones": milestones(1_000)})
        ids.append((who["id"], r.get_json()["id"]))
    client.post(f"/v1/deals/{ids[0][1]}/decline", headers=_auth(creator["api_key"]), json={})
    page = client.get("/v1/deals?limit=2", headers=_auth(brand["api_key"])).get_json()
    assert [d["id"] for d in page["data"]] == [ids[3][1], ids[2][1]] and page["has_more"]
    page2 = client.get(f"/v1/deals?limit=2&starting_after={ids[2][1]}",
                       headers=_auth(brand["api_key"])).get_json()
    assert [d["id"] for d in page2["data"]] == [ids[1][1], ids[0][1]]
    assert not page2["has_more"]
    mine = client.get("/v1/deals", headers=_auth(creator["api_key"])).get_json()["data"]
    assert [d["id"] for d in mine] == [ids[3][1], ids[2][1], ids[0][1]]
    declined = client.get("/v1/deals?status=declined",
                          headers=_auth(creator["api_key"])).get_json()["data"]
    assert [d["id"] for d in declined] == [ids[0][1]]
    assert client.get("/v1/deals?status=nope", headers=_auth(brand["api_key"])).status_code == 400
    assert client.get(f"/v1/deals?starting_after={ids[1][1]}",
                      headers=_auth(creator["api_key"])).status_code == 404
    fan = _party(client, "fan")
    assert client.get("/v1/deals", headers=_auth(fan["api_key"])).status_code == 403
