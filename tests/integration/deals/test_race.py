"""Approve and cancel on the same milestone at once: exactly one gets its money."""

from __future__ import annotations

import threading
from typing import Any

from tests.fixtures.live import LiveApp
from tests.integration.deals.helpers import (
    act,
    assert_escrow_matches_ledger,
    funded_deal,
    get_deal,
    new_brand,
    new_creator,
    verify_ledger,
)


def test_concurrent_approve_and_cancel_have_one_winner(deal_stack: LiveApp) -> None:
    live = deal_stack
    brand, creator = new_brand(live), new_creator(live)
    bk, ck = brand["api_key"], creator["api_key"]
    outcomes = set()
    for _ in range(4):
        deal = funded_deal(live, brand, creator, 10_000, 5_000)
        ms = deal["milestones"][0]["id"]
        act(live, ck, f"/v1/deals/{deal['id']}/milestones/{ms}/submit",
            {"proof_url": "https://x.com/p"})
        answers: dict[str, Any] = {}
        start = threading.Barrier(2)

        def call(name: str, path: str, key: str, deal_id: str = deal["id"],
                 start: threading.Barrier = start, answers: dict[str, Any] = answers) -> None:
            start.wait()
            answers[name] = live.call("POST", f"/v1/deals/{deal_id}/{path}", key, json={})

        threads = [threading.Thread(target=call, args=("approve", f"milestones/{ms}/approve", bk)),
                   threading.Thread(target=call, args=("cancel", "cancel", ck))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        approve, cancel = answers["approve"], answers["cancel"]
        assert cancel.status_code == 200, cancel.text  # cancel always succeeds, first or second
        final = get_deal(live, bk, deal["id"])
        assert final["status"] == "canceled"
        m = final["milestones"][0]
        if approve.status_code == 200:
            # Approve won the lock: the creator has the milestone, the brand the rest.
            outcomes.add("approve")
            assert m["status"] == "released"
            assert final["escrow"]["released"] == 10_000
            assert final["escrow"]["refunded"] == 5_000
        else:
            outcomes.add("cancel")
            assert (approve.status_code, approve.json()["error"]["code"]) == (
                409, "invalid_transition")
            assert m["status"] == "canceled"
            assert final["escrow"]["released"] == 0
            assert final["escrow"]["refunded"] == 15_000
        assert final["escrow"]["remaining"] == 0
        assert_escrow_matches_ledger(final)
        status, page = live.sandbox.api("GET", "/v1/refunds",
                                        {"payment_intent": final["payment_intent"]})
        assert sum(r["amount"] for r in page["data"]) == final["escrow"]["refunded"]
    verify_ledger()
    assert outcomes  # which side wins is the scheduler's; either way exactly one did
