"""The worker's line between an event's trouble and trouble no event causes.

An event's own trouble stays on its row (failed, or retried with backoff); trouble no event
causes (Stripe refusing our key, the task's time limit, a domain that cannot load) stops the
drain and counts no attempt. A transient Stripe error is never remembered, so a retry asks
Stripe again; a replay starts counting attempts afresh.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select, update

from payments.db import session_scope
from payments.gateway import gateway_for
from tests.fixtures.inbox import Stack
from tests.integration.webhooks.test_poison import (
    booked,
    charge_event_of,
    inbox_row,
    make_tips,
    sandbox_events,
    variant,
)
from webhooks import inbox
from webhooks.models import FAILED, PROCESSED, RECEIVED, WebhookEvent
from webhooks.worker import StripeReader, drain, process_rows

FEE = Decimal("0.10")


def stored_charge_event(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    _, [tip] = make_tips(stack, 1)
    event = charge_event_of(sandbox_events(stack), tip)
    with session_scope() as s:
        inbox.store_event(s, event)
    return tip, event


def make_due(stripe_id: str) -> None:
    with session_scope() as s:
        s.execute(update(WebhookEvent).where(WebhookEvent.stripe_id == stripe_id)
                  .values(next_attempt_at=0))


def apply_with(reader: StripeReader, stripe_id: str) -> None:
    with session_scope() as s:
        rows = list(s.scalars(select(WebhookEvent).where(WebhookEvent.stripe_id == stripe_id)))
        process_rows(s, rows, reader, FEE, batched=False)


def test_a_transient_error_is_retried_with_a_fresh_read(quiet_stack: Stack) -> None:
    tip, event = stored_charge_event(quiet_stack)
    txn = event["data"]["object"]["balance_transaction"]
    # Enough 503s for the SDK's own retries of both reads (prefetch, then the handler's).
    quiet_stack.sandbox.fault(503, count=20, path_prefix=f"/v1/balance_transactions/{txn}")
    # One reader for both attempts, as in one long drain: the 503 must not be remembered.
    reader = StripeReader(gateway_for(quiet_stack.config))
    apply_with(reader, event["id"])
    quiet_stack.sandbox.clear_faults()
    row = inbox_row(event["id"])
    assert row.status == RECEIVED and row.attempts == 1 and row.next_attempt_at > 0
    assert row.last_error is not None and row.last_error.startswith("transient:")
    make_due(event["id"])
    apply_with(reader, event["id"])
    assert inbox_row(event["id"]).status == PROCESSED
    assert booked(tip["id"])


def test_stripe_refusing_our_key_stops_the_drain_and_counts_nothing(quiet_stack: Stack) -> None:
    _, event = stored_charge_event(quiet_stack)
    quiet_stack.sandbox.fault(401, count=50, path_prefix="/v1/balance_transactions")
    with pytest.raises(Exception) as raised:
        drain(quiet_stack.config)
    assert getattr(raised.value, "http_status", None) == 401
    row = inbox_row(event["id"])
    assert row.status == RECEIVED and row.attempts == 0 and row.last_error is None
    quiet_stack.sandbox.clear_faults()
    assert drain(quiet_stack.config) == 1
    assert inbox_row(event["id"]).status == PROCESSED


def test_the_time_limit_stops_the_drain_and_fails_no_event(quiet_stack: Stack) -> None:
    _, event = stored_charge_event(quiet_stack)
    with mock.patch("payments.tips.service.charge_succeeded",
                    side_effect=SoftTimeLimitExceeded()), pytest.raises(SoftTimeLimitExceeded):
        drain(quiet_stack.config)
    row = inbox_row(event["id"])
    assert row.status == RECEIVED and row.attempts == 0
    # And a drain bounded in time stops between batches.
    assert drain(quiet_stack.config, max_seconds=-1) == 0
    assert drain(quiet_stack.config) == 1


def test_a_kind_no_domain_owns_fails_and_is_never_dropped(quiet_stack: Stack) -> None:
    _, event = stored_charge_event(quiet_stack)
    stray = variant(event, metadata={"creatorpay_kind": "gift_card", "gift_card_id": "gc_1"})
    with session_scope() as s:
        inbox.store_event(s, stray)
    assert drain(quiet_stack.config) == 2
    row = inbox_row(stray["id"])
    assert row.status == FAILED
    assert row.last_error == "LookupError: no domain owns creatorpay_kind 'gift_card'"


def test_replay_counts_attempts_afresh(quiet_stack: Stack) -> None:
    _, event = stored_charge_event(quiet_stack)
    with session_scope() as s:
        s.execute(update(WebhookEvent).where(WebhookEvent.stripe_id == event["id"])
                  .values(status=FAILED, attempts=inbox.MAX_ATTEMPTS, last_error="old"))
    with session_scope() as s:
        row = inbox.replay(s, inbox.get_by_stripe_id(s, event["id"]).id)
        assert row.attempts == 0
    txn = event["data"]["object"]["balance_transaction"]
    quiet_stack.sandbox.fault(503, count=20, path_prefix=f"/v1/balance_transactions/{txn}")
    drain(quiet_stack.config)
    quiet_stack.sandbox.clear_faults()
    row = inbox_row(event["id"])
    # One transient error after the replay is one attempt, retried: not failed at once.
    assert row.status == RECEIVED and row.attempts == 1, (row.status, row.attempts)
