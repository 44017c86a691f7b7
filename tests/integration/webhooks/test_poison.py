"""One event that cannot be applied never holds back the others.

Fifty tips' real events (read from a private sandbox's Events API) are delivered signed to
the served app with no worker running, together with bad events; then a real worker drains
them all in one batch. The good ones are booked, each bad one is ``failed`` with its reason,
no drain task fails, and the ledger verifies. Once the cause is gone, a replay books the
failed event exactly once.
"""

from __future__ import annotations

import copy
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from payments.auth import issue_key
from payments.db import session_scope
from payments.ledger import service as ledger
from payments.ledger.models import Journal
from tests.fixtures.inbox import Stack, TaskTrouble
from tests.fixtures.workers import wait_for
from tests.integration.tips.test_flow import new_creator, new_fan
from webhooks.models import FAILED, PROCESSED, RECEIVED, WebhookEvent
from webhooks.routes import route_table

GOOD_TIPS = 50


def make_tips(stack: Stack, n: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    creator = new_creator(stack.live)
    fan = new_fan(stack.live)

    def tip(i: int) -> dict[str, Any]:
        r = stack.live.call("POST", "/v1/tips", fan["api_key"], json={
            "creator": creator["handle"], "amount": 500 + i, "currency": "usd",
            "payment_method": "pm_card_visa", "message": secrets.token_hex(3)})
        assert r.status_code == 201, r.text
        return dict(r.json())

    with ThreadPoolExecutor(max_workers=4) as pool:
        return creator, list(pool.map(tip, range(n)))


def sandbox_events(stack: Stack) -> list[dict[str, Any]]:
    """Every event the private sandbox made that we handle, oldest first."""
    handled = route_table().handled_types
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = stack.gateway.list_events(created_gte=0, starting_after=after, limit=100)
        found += [e for e in page["data"] if e["type"] in handled]
        if not page["has_more"] or not page["data"]:
            break
        after = page["data"][-1]["id"]
    return sorted(found, key=lambda e: (e["created"], e["id"]))


def charge_event_of(events: list[dict[str, Any]], tip: dict[str, Any]) -> dict[str, Any]:
    [event] = [e for e in events if e["type"] == "charge.succeeded"
               and e["data"]["object"]["payment_intent"] == tip["payment_intent"]]
    return event


def variant(event: dict[str, Any], created: int | None = None, **changes: Any) -> dict[str, Any]:
    """A copy of ``event`` as another event: new id, its object changed by ``changes``."""
    bad = copy.deepcopy(event)
    bad["id"] = "evt_" + secrets.token_hex(12)
    bad["data"]["object"].update(changes)
    if created is not None:
        bad["created"] = created
    return bad


def booked(tip_id: str) -> bool:
    with session_scope() as s:
        keys = set(s.scalars(select(Journal.key).where(Journal.source_id == tip_id)))
    return keys == {f"tip:{tip_id}", f"tip:{tip_id}:processor_fee", f"tip:{tip_id}:platform_fee"}


def journal_count(tip_id: str) -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(Journal)
                            .where(Journal.source_id == tip_id)) or 0)


def inbox_row(stripe_id: str) -> WebhookEvent:
    with session_scope() as s:
        row = s.scalar(select(WebhookEvent).where(WebhookEvent.stripe_id == stripe_id))
        assert row is not None
        s.expunge(row)
        return row


def waiting() -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(WebhookEvent)
                            .where(WebhookEvent.status == RECEIVED)) or 0)


def assert_settled(good: list[dict[str, Any]], bad: dict[str, str],
                   trouble: TaskTrouble) -> None:
    """Every good tip booked, every bad event failed with its reason, no task trouble."""
    wait_for(lambda: waiting() == 0, timeout=30)
    missing = [t["id"] for t in good if not booked(t["id"])]
    assert missing == [], f"{len(missing)} of {len(good)} tips not booked"
    for stripe_id, reason in bad.items():
        row = inbox_row(stripe_id)
        assert row.status == FAILED, (stripe_id, row.status, row.last_error)
        assert row.last_error is not None and reason in row.last_error, row.last_error
        assert row.attempts == 1
    assert trouble.seen == []
    with session_scope() as s:
        assert ledger.verify(s).ok
        totals = ledger.trial_balance(s)["totals"]
    assert all(t["total"] == 0 for t in totals), totals


def deliver_batch(stack: Stack, events: list[dict[str, Any]]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(stack.deliver, events))
    with session_scope() as s:
        stored = s.scalar(select(func.count()).select_from(WebhookEvent)
                          .where(WebhookEvent.status == RECEIVED))
    assert stored == len(events)  # all waiting: one drain claims them as one batch


@pytest.mark.parametrize("bad_first", [False, True], ids=["bad-in-the-middle", "bad-first"])
def test_a_missing_balance_transaction_fails_only_its_event(
    quiet_stack: Stack, task_trouble: TaskTrouble, bad_first: bool,
) -> None:
    creator, made = make_tips(quiet_stack, GOOD_TIPS + 1)
    good, victim = made[:GOOD_TIPS], made[GOOD_TIPS]
    events = sandbox_events(quiet_stack)
    real = charge_event_of(events, victim)
    events.remove(real)
    first = min(e["created"] for e in events)
    bad = variant(real, created=first - 100 if bad_first else None,
                  balance_transaction="txn_" + secrets.token_hex(12))
    events.insert(0 if bad_first else len(events) // 2, bad)
    deliver_batch(quiet_stack, events)

    with quiet_stack.worker():
        assert_settled(good, {bad["id"]: "No such balance_transaction"}, task_trouble)
    assert journal_count(victim["id"]) == 0
    pending = quiet_stack.live.call("GET", "/v1/creators/me/balance", creator["api_key"])
    [usd] = pending.json()["balances"]
    assert usd["pending"] > 0


def test_malformed_events_fail_alone(quiet_stack: Stack, task_trouble: TaskTrouble) -> None:
    _, made = make_tips(quiet_stack, GOOD_TIPS + 1)
    good, victim = made[:GOOD_TIPS], made[GOOD_TIPS]
    events = sandbox_events(quiet_stack)
    real = charge_event_of(events, victim)
    events.remove(real)
    no_object = variant(real)
    no_object["data"] = {"previous_attributes": {}}
    unknown_tip = variant(real, metadata={"creatorpay_kind": "tip", "tip_id": "tip_nosuchtip"})
    float_amount = variant(real, amount_refunded=12.5)
    text_amount = variant(real, amount_refunded="12")
    bad = [no_object, unknown_tip, float_amount, text_amount]
    for i, event in enumerate(bad):
        events.insert(i * 25, event)
    deliver_batch(quiet_stack, events)

    with quiet_stack.worker():
        assert_settled(good, {
            no_object["id"]: "malformed event: no data.object",
            unknown_tip["id"]: "LookupError: tip tip_nosuchtip",
            float_amount["id"]: "TypeError: amount_refunded is 12.5, not an integer",
            text_amount["id"]: "TypeError: amount_refunded is '12', not an integer",
        }, task_trouble)
    assert journal_count(victim["id"]) == 0


def test_with_chaos_the_bad_event_still_fails_alone(
    delivering_stack: Stack, task_trouble: TaskTrouble,
) -> None:
    """The sandbox delivers duplicated, delayed and reordered; a bad event lands among them."""
    stack = delivering_stack
    with stack.sandbox.chaos(duplicate_rate=0.3, max_delay_ms=300, shuffle=True, seed=11), \
            stack.worker():
        _, made = make_tips(stack, GOOD_TIPS // 2)
        real = charge_event_of(sandbox_events(stack), made[0])
        bad = variant(real, created=real["created"] - 100,
                      balance_transaction="txn_" + secrets.token_hex(12))
        stack.deliver(bad)
        _, more = make_tips(stack, GOOD_TIPS - len(made))
        stack.sandbox.wait_deliveries(timeout=60, endpoint_id=stack.served.endpoint_id)
        assert_settled(made + more, {bad["id"]: "No such balance_transaction"}, task_trouble)


def test_replay_after_the_object_exists_books_once(
    quiet_stack: Stack, task_trouble: TaskTrouble,
) -> None:
    """Stripe answers 404 for the charge's balance transaction (another account, say): the
    event fails; once Stripe has it, the replay books the tip once, and a second replay
    changes nothing."""
    _, [tip] = make_tips(quiet_stack, 1)
    event = charge_event_of(sandbox_events(quiet_stack), tip)
    txn = event["data"]["object"]["balance_transaction"]
    quiet_stack.sandbox.fault(404, count=10, path_prefix=f"/v1/balance_transactions/{txn}")
    with session_scope() as s:
        key = issue_key(s, "admin", None, label="poison-test")
    with quiet_stack.worker():
        quiet_stack.deliver(event)
        wait_for(lambda: inbox_row(event["id"]).status == FAILED, timeout=30)
        row = inbox_row(event["id"])
        assert row.last_error is not None and "404" in row.last_error, row.last_error
        assert journal_count(tip["id"]) == 0

        quiet_stack.sandbox.clear_faults()  # Stripe has the object now
        for _ in range(2):  # the second replay changes nothing: handlers are idempotent
            r = quiet_stack.live.call(
                "POST", f"/v1/admin/webhook-events/{event['id']}/replay", key)
            assert r.status_code == 200, r.text
            wait_for(lambda: inbox_row(event["id"]).status == PROCESSED, timeout=30)
            assert booked(tip["id"]) and journal_count(tip["id"]) == 3
    assert task_trouble.seen == []
    with session_scope() as s:
        assert ledger.verify(s).ok
