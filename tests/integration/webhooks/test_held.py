"""A batch never waits on a subscription another worker's batch holds: that subscription's
events are left waiting, untouched (no attempt counted), and the next batch applies them;
every other event of the batch is applied meanwhile."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from payments.db import session_scope
from payments.ledger import service as ledger
from payments.subscriptions.events import _public_id
from payments.subscriptions.models import Subscription
from tests.fixtures.inbox import Stack
from tests.integration.subscriptions.helpers import new_creator, new_fan, new_tier, subscribe
from tests.integration.webhooks.test_poison import sandbox_events
from webhooks import inbox
from webhooks.models import PROCESSED, RECEIVED, WebhookEvent
from webhooks.worker import StripeReader, drain, process_rows

FEE = Decimal("0.10")


def statuses() -> dict[str, tuple[str, int]]:
    with session_scope() as s:
        return {i: (st, n) for i, st, n in s.execute(
            select(WebhookEvent.stripe_id, WebhookEvent.status, WebhookEvent.attempts))}


def booked(invoice_id: str) -> bool:
    with session_scope() as s:
        return ledger.journal_by_key(s, f"invoice:{invoice_id}") is not None


@pytest.mark.postgres
def test_events_of_a_held_subscription_wait_for_the_next_batch(quiet_stack: Stack) -> None:
    live = quiet_stack.live
    creator = new_creator(live)
    tier = new_tier(live, creator, 1200)
    held, free = (subscribe(live, new_fan(live), tier) for _ in range(2))
    events = sandbox_events(quiet_stack)
    with session_scope() as s:
        assert inbox.store_events(s, events, via="test") == len(events)
    names = {e["id"]: _public_id(e["data"]["object"]) for e in events}
    mine = {i for i, p in names.items() if p == held["id"]}
    paid = {p: e["data"]["object"]["id"] for e in events if e["type"] == "invoice.paid"
            for p in [names[e["id"]]]}
    assert mine and set(paid) == {held["id"], free["id"]}

    with session_scope() as holder:  # another worker's batch, holding one subscription
        holder.scalar(select(Subscription).where(Subscription.public_id == held["id"])
                      .with_for_update())
        with session_scope() as s:
            rows = inbox.claim_batch(s, 200)
            assert len(rows) == len(events)
            assert process_rows(s, rows, StripeReader(quiet_stack.gateway), FEE) == len(mine)
        after = statuses()
        assert {i for i, (st, _) in after.items() if st == RECEIVED} == mine
        assert all(after[i] == (RECEIVED, 0) for i in mine)  # untouched, no attempt counted
        assert all(st == PROCESSED for i, (st, _) in after.items() if i not in mine)
        assert booked(paid[free["id"]]) and not booked(paid[held["id"]])

    assert drain(quiet_stack.config) == len(mine)
    assert all(st == PROCESSED for st, _ in statuses().values())
    assert booked(paid[held["id"]])
