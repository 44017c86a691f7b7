"""Payouts end to end: API -> ledger (available -> in_transit) -> Stripe transfer -> the
connected account's payout events -> paid_out; refusals return the money."""

from __future__ import annotations

import threading
from typing import Any

from payments.db import session_scope
from payments.ledger import service as ledger
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.payouts.helpers import connect, creator_with_available, tip
from tests.integration.tips.test_flow import balances, new_creator

DAY = 86400


def payouts(live: LiveApp, key: str) -> list[dict[str, Any]]:
    r = live.call("GET", "/v1/creators/me/payouts", key)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_bad_input_then_no_account_then_too_little(live_stack: LiveApp) -> None:
    live = live_stack
    creator, avail = creator_with_available(live, 5000)
    key = creator["api_key"]
    for body in ({"currency": "usd", "amount": "1200"}, {"currency": "usd", "amount": 1200.0},
                 {"currency": "xyz"}, {"amount": 1200},
                 {"currency": "usd", "amount": 100},  # under the minimum
                 {"currency": "usd", "extra": 1}):
        r = live.call("POST", "/v1/creators/me/payouts", key, json=body)
        assert r.status_code == 400, (body, r.text)
    # Input is fine, but the connected account cannot take payouts: 409, nothing moved.
    r = live.call("POST", "/v1/creators/me/payouts", key, json={"currency": "usd"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "payouts_not_enabled"
    connect(live, creator)
    r = live.call("POST", "/v1/creators/me/payouts", key,
                  json={"currency": "usd", "amount": avail + 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_balance"
    assert payouts(live, key) == []
    assert balances(live, key)["usd"]["available"] == avail
    # A fan cannot ask for a payout.
    fan = live.call("POST", "/v1/fans", json={"email": "f@example.com", "display_name": "F"})
    r = live.call("POST", "/v1/creators/me/payouts", fan.json()["api_key"],
                  json={"currency": "usd"})
    assert r.status_code == 403


def test_payout_moves_to_in_transit_then_paid_out(live_stack: LiveApp) -> None:
    live = live_stack
    creator, avail = creator_with_available(live, 5000)
    key = creator["api_key"]
    account = connect(live, creator)
    r = live.call("POST", "/v1/creators/me/payouts", key, json={"currency": "USD"},
                  headers={"Idempotency-Key": "po-1"})
    assert r.status_code == 201, r.text
    po = r.json()
    assert po["id"].startswith("po_") and po["amount"] == avail
    assert po["status"] == "in_transit" and po["transfer"].startswith("tr_")
    again = live.call("POST", "/v1/creators/me/payouts", key, json={"currency": "USD"},
                      headers={"Idempotency-Key": "po-1"})
    assert again.status_code == 201 and again.json()["id"] == po["id"]
    bal = balances(live, key)["usd"]
    assert bal["available"] == 0 and bal["in_transit"] == avail and bal["paid_out"] == 0
    # The transfer carries our key and lands on the connected account.
    transfer = live.sandbox.api("GET", f"/v1/transfers/{po['transfer']}")[1]
    assert transfer["destination"] == account and transfer["amount"] == avail
    assert transfer["metadata"]["payout_id"] == po["id"]

    # The connected account pays out at the next UTC midnight; it arrives two days later.
    now = live.sandbox.now()
    live.sandbox.advance(DAY - now % DAY + 3 * DAY)
    wait_for(lambda: payouts(live, key)[0]["status"] == "paid", timeout=30)
    bal = balances(live, key)["usd"]
    assert bal["in_transit"] == 0 and bal["paid_out"] == avail and bal["available"] == 0
    with session_scope() as s:
        assert ledger.verify(s).ok
        clearing = ledger.account_balance(s, ledger.platform_account("payouts_in_transit",
                                                                     "usd"))
        assert clearing == 0


def test_two_concurrent_requests_never_overdraw(live_stack: LiveApp) -> None:
    live = live_stack
    creator, avail = creator_with_available(live, 6000)
    key = creator["api_key"]
    connect(live, creator)
    share = avail * 6 // 10
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def ask() -> None:
        barrier.wait()
        r = live.call("POST", "/v1/creators/me/payouts", key,
                      json={"currency": "usd", "amount": share})
        answers.append(r.status_code)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [201, 409]
    bal = balances(live, key)["usd"]
    assert bal["available"] == avail - share and bal["in_transit"] == share


def test_a_refused_transfer_returns_the_money(live_stack: LiveApp) -> None:
    live = live_stack
    creator, avail = creator_with_available(live, 5000)
    key = creator["api_key"]
    connect(live, creator)
    live.sandbox.fault(status=400, count=1, path_prefix="/v1/transfers", method="POST")
    r = live.call("POST", "/v1/creators/me/payouts", key, json={"currency": "usd"})
    assert r.status_code == 201, r.text
    po = r.json()
    assert po["status"] == "failed" and po["failure_message"]
    assert po["transfer"] is None
    bal = balances(live, key)["usd"]
    assert bal["available"] == avail and bal["in_transit"] == 0
    lines = live.call("GET", "/v1/creators/me/ledger", key).json()["data"]
    payout_lines = [line for line in lines if line["kind"] == "payout"]
    assert sorted(line["amount"] for line in payout_lines if line["account"] == "available") \
        == [-avail, avail]


def test_automatic_payouts_respect_schedule_and_minimum(live_stack: LiveApp) -> None:
    live = live_stack
    rich, avail = creator_with_available(live, 5000)
    poor = new_creator(live)
    tip(live, poor, 600)  # nets under the USD 10.00 minimum
    wait_for(lambda: balances(live, poor["api_key"]).get("usd", {}).get("pending", 0) > 0)
    from tests.integration.payouts.helpers import mature_now

    mature_now(poor, live)
    small = balances(live, poor["api_key"])["usd"]["available"]
    assert 0 < small < 1000
    for c in (rich, poor):
        connect(live, c)
        r = live.call("PATCH", "/v1/creators/me/payout-settings", c["api_key"],
                      json={"schedule": "daily"})
        assert r.status_code == 200 and r.json()["schedule"] == "daily"
    bad = live.call("PATCH", "/v1/creators/me/payout-settings", rich["api_key"],
                    json={"schedule": "hourly"})
    assert bad.status_code == 400

    import tasks

    tasks.app.send_task("payouts.run_schedule")
    wait_for(lambda: payouts(live, rich["api_key"]), timeout=30)
    made = payouts(live, rich["api_key"])
    assert len(made) == 1 and made[0]["automatic"] and made[0]["amount"] == avail
    wait_for(lambda: payouts(live, rich["api_key"])[0]["status"] == "in_transit", timeout=30)
    tasks.app.send_task("payouts.run_schedule")  # the same day again: nothing more
    assert payouts(live, poor["api_key"]) == []
    assert balances(live, poor["api_key"])["usd"]["available"] == small
    wait_for(lambda: len(payouts(live, rich["api_key"])) == 1)
