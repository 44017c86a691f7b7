"""GET /v1/creators/me/balance, /v1/creators/me/ledger, /v1/admin/trial-balance."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.accounts.models import Creator
from payments.auth import issue_key
from payments.ledger import service as ledger
from payments.ledger.service import creator_account, credit, debit, platform_account


def signup(client: Any, handle: str) -> tuple[dict[str, str], int, Any]:
    resp = client.post("/v1/creators", json={
        "handle": handle, "display_name": handle, "email": f"{handle}@example.com",
        "kind": "influencer", "country": "US", "default_currency": "usd"})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    return {"Authorization": f"Bearer {body['api_key']}"}, body["id"], None


def creator_pk(session: Session, public_id: str) -> int:
    cid = session.scalar(select(Creator.id).where(Creator.public_id == public_id))
    assert cid is not None
    return cid


def tip(session: Session, creator: int, amount: int, key: str, cur: str = "usd",
        at: int = 1_700_000_000) -> None:
    ledger.post(session, key, "tip", [debit(platform_account("stripe_balance", cur), amount),
                                      credit(creator_account(creator, "pending", cur), amount)],
                source=("tip", f"tip_{key}"), effective_at=at)


def test_balance_in_the_creators_sign(client: Any, db_session: Session) -> None:
    auth, pid, _ = signup(client, "bal_one")
    cid = creator_pk(db_session, pid)
    tip(db_session, cid, 1500, "a")
    tip(db_session, cid, 500, "b", cur="jpy")
    resp = client.get("/v1/creators/me/balance", headers=auth)
    assert resp.status_code == 200
    assert resp.get_json() == {"balances": [
        {"currency": "jpy", "pending": 500, "available": 0, "reserved": 0, "in_transit": 0,
         "paid_out": 0},
        {"currency": "usd", "pending": 1500, "available": 0, "reserved": 0, "in_transit": 0,
         "paid_out": 0},
    ]}


def test_balance_auth_and_roles(client: Any, db_session: Session) -> None:
    assert client.get("/v1/creators/me/balance").status_code == 401
    fan = client.post("/v1/fans", json={"email": "f@example.com", "display_name": "F"})
    key = fan.get_json()["api_key"]
    resp = client.get("/v1/creators/me/balance", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "wrong_role"


def test_ledger_lines_paging_filters_and_ownership(client: Any, db_session: Session) -> None:
    auth, pid, _ = signup(client, "lines_one")
    other_auth, other_pid, _ = signup(client, "lines_two")
    cid = creator_pk(db_session, pid)
    for i in range(5):
        tip(db_session, cid, 100 * (i + 1), f"l{i}", at=1_000 + i)
    tip(db_session, cid, 42, "eur1", cur="eur", at=2_000)
    tip(db_session, creator_pk(db_session, other_pid), 999, "o1")

    resp = client.get("/v1/creators/me/ledger?limit=2&currency=USD", headers=auth)
    body = resp.get_json()
    assert resp.status_code == 200 and body["has_more"] is True
    assert [(x["amount"], x["balance_after"]) for x in body["data"]] == [(500, 1500),
                                                                          (400, 1000)]
    first = body["data"][0]
    assert first["id"].startswith("le_") and first["journal"].startswith("jr_")
    assert first["kind"] == "tip" and first["account"] == "pending"
    assert first["source"] == {"type": "tip", "id": "tip_l4"}
    resp = client.get(f"/v1/creators/me/ledger?limit=10&currency=usd&starting_after="
                      f"{body['data'][1]['id']}", headers=auth)
    assert [x["amount"] for x in resp.get_json()["data"]] == [300, 200, 100]
    assert resp.get_json()["has_more"] is False

    resp = client.get("/v1/creators/me/ledger?effective_at[gte]=1001&effective_at[lt]=1003",
                      headers=auth)
    assert [x["amount"] for x in resp.get_json()["data"]] == [300, 200]
    everything = client.get("/v1/creators/me/ledger?limit=100", headers=auth).get_json()
    assert 999 not in [x["amount"] for x in everything["data"]]
    assert len(everything["data"]) == 6
    theirs = client.get("/v1/creators/me/ledger", headers=other_auth).get_json()
    assert [x["amount"] for x in theirs["data"]] == [999]

    for bad in ("limit=0", "limit=101", "currency=xyz", "starting_after=nope",
                "effective_at[gte]=abc", "unknown=1"):
        resp = client.get(f"/v1/creators/me/ledger?{bad}", headers=auth)
        assert resp.status_code == 400, bad
        assert resp.get_json()["error"]["code"] == "invalid_request"


def test_trial_balance_for_admins(client: Any, db_session: Session) -> None:
    auth, pid, _ = signup(client, "tb_one")
    cid = creator_pk(db_session, pid)
    tip(db_session, cid, 1500, "t1")
    admin = {"Authorization": f"Bearer {issue_key(db_session, 'admin', None)}"}
    resp = client.get("/v1/admin/trial-balance", headers=admin)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["totals"] == [{"currency": "usd", "total": 0}]
    mine = [a for a in body["accounts"] if a["owner"] == pid]
    assert mine == [{"account": mine[0]["account"], "owner": pid, "purpose": "pending",
                     "currency": "usd", "balance": -1500}]
    assert client.get("/v1/admin/trial-balance", headers=auth).status_code == 403


def test_openapi_documents_the_ledger(client: Any) -> None:
    spec = client.get("/openapi.json").get_json()
    for path in ("/v1/creators/me/balance", "/v1/creators/me/ledger",
                 "/v1/admin/trial-balance"):
        assert "get" in spec["paths"][path]


def test_verify_over_http_clean_then_naming_a_drift(client: Any, db_session: Session) -> None:
    from payments.ledger.models import LedgerAccount

    auth, pid, _ = signup(client, "verify_one")
    cid = creator_pk(db_session, pid)
    tip(db_session, cid, 1500, "v1")
    admin = {"Authorization": f"Bearer {issue_key(db_session, 'admin', None)}"}
    clean = client.get("/v1/admin/ledger/verify", headers=admin)
    assert clean.status_code == 200, clean.get_json()
    body = clean.get_json()
    assert body["ok"] is True and body["drifts"] == [] and body["unbalanced_journals"] == []
    assert body["journals"] >= 1 and {"currency": "usd", "total": 0} in body["totals"]
    # A running balance that no longer equals its entries is named.
    account = db_session.scalar(select(LedgerAccount).where(
        LedgerAccount.owner_id == cid, LedgerAccount.purpose == "pending"))
    assert account is not None
    account.balance += 7
    db_session.flush()
    drifted = client.get("/v1/admin/ledger/verify", headers=admin).get_json()
    assert drifted["ok"] is False
    assert any(d["account_id"] == account.id for d in drifted["drifts"]), drifted
    assert client.get("/v1/admin/ledger/verify", headers=auth).status_code == 403
    assert client.get("/v1/admin/ledger/verify").status_code == 401
