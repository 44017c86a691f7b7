"""``Idempotency-Key`` on ``POST /v1/tips`` under a real race, over real HTTP.

50 simultaneous requests with one key make one tip and one PaymentIntent (the sandbox counts
its objects), and every caller gets the same answer.
"""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select

from payments.db import session_scope
from payments.tips.models import Tip
from tests.fixtures.live import LiveApp
from tests.integration.tips.test_flow import new_creator, new_fan

CONCURRENCY = 50


def tips_of(creator_handle: str) -> list[str]:
    from payments.accounts.models import Creator

    with session_scope() as s:
        creator_id = s.scalar(select(Creator.id).where(Creator.handle == creator_handle))
        return list(s.scalars(select(Tip.public_id).where(Tip.creator_id == creator_id)))


def post_tip(live: LiveApp, api_key: str, idem: str, body: dict[str, Any]) -> Any:
    return live.call("POST", "/v1/tips", api_key, json=body,
                     headers={"Idempotency-Key": idem})


def test_fifty_concurrent_retries_make_one_tip_and_one_payment_intent(live_app: LiveApp) -> None:
    live = live_app
    creator = new_creator(live)
    fan = new_fan(live)
    body = {"creator": creator["handle"], "amount": 1234, "currency": "usd",
            "payment_method": "pm_card_visa", "message": "same request, fifty times"}
    idem = "race-" + secrets.token_hex(8)
    gate = threading.Barrier(CONCURRENCY)

    def one(_: int) -> tuple[int, Any]:
        gate.wait(timeout=30)  # all fifty leave together
        r = post_tip(live, fan["api_key"], idem, body)
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        answers = list(pool.map(one, range(CONCURRENCY)))

    statuses = {status for status, _ in answers}
    assert statuses == {201}, statuses
    first = answers[0][1]
    assert all(b == first for _, b in answers)  # every answer identical, body and all
    assert first["status"] == "succeeded" and first["amount"] == 1234

    assert tips_of(creator["handle"]) == [first["id"]]  # exactly one tip row
    assert live.sandbox.count("payment_intent", {"tip_id": first["id"]}) == 1
    assert live.sandbox.count("payment_intent", {"creator_id": creator["id"]}) == 1

    # A later retry replays the same answer.
    again = post_tip(live, fan["api_key"], idem, body)
    assert again.status_code == 201 and again.json() == first
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_same_key_with_another_body_is_409_and_moves_nothing(live_app: LiveApp) -> None:
    live = live_app
    creator = new_creator(live)
    fan = new_fan(live)
    idem = "reuse-" + secrets.token_hex(8)
    body = {"creator": creator["handle"], "amount": 1500, "currency": "usd",
            "payment_method": "pm_card_visa"}
    r = post_tip(live, fan["api_key"], idem, body)
    assert r.status_code == 201, r.text
    tip_id = r.json()["id"]

    other = post_tip(live, fan["api_key"], idem, {**body, "amount": 9900})
    assert other.status_code == 409, other.text
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused" and error["param"] == "Idempotency-Key"
    assert tips_of(creator["handle"]) == [tip_id]
    assert live.sandbox.count("payment_intent", {"creator_id": creator["id"]}) == 1
    # Key order in the JSON body does not make it another request.
    reordered = dict(reversed(list(body.items())))
    same = post_tip(live, fan["api_key"], idem, reordered)
    assert same.status_code == 201 and same.json()["id"] == tip_id


def test_a_key_is_scoped_to_its_principal(live_app: LiveApp) -> None:
    live = live_app
    creator = new_creator(live)
    fans = [new_fan(live), new_fan(live)]
    idem = "shared-" + secrets.token_hex(8)
    body = {"creator": creator["handle"], "amount": 700, "currency": "usd",
            "payment_method": "pm_card_visa"}
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda i: post_tip(live, fans[i % 2]["api_key"], idem, body),
                                range(10)))
    assert {a.status_code for a in answers} == {201}
    by_fan = {fans[i % 2]["id"]: set() for i in range(2)}  # type: dict[str, set[str]]
    for i, a in enumerate(answers):
        by_fan[fans[i % 2]["id"]].add(a.json()["id"])
    assert all(len(ids) == 1 for ids in by_fan.values())  # one tip per fan...
    mine, theirs = (ids.pop() for ids in by_fan.values())
    assert mine != theirs  # ...and not the same tip
    assert sorted(tips_of(creator["handle"])) == sorted([mine, theirs])
    assert live.sandbox.count("payment_intent", {"creator_id": creator["id"]}) == 2
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Tip)
                        .where(Tip.public_id.in_([mine, theirs]))) == 2
