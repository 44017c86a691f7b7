"""Thin payout tasks: the schedule, the reserve, retries, the daily reconciliation."""

from __future__ import annotations

from datetime import UTC, datetime

from payments.clock import now_ts
from payments.db import session_scope
from payments.gateway import gateway_for
from payments.payouts import reserve, service, transfers
from payments.payouts.models import Payout
from tasks import app, current_config

# A pending payout younger than this may still be in its view's Stripe call.
RETRY_AFTER = 60


@app.task(name="payouts.submit", acks_late=True)
def submit(payout_id: int) -> None:
    with session_scope() as session:
        payout = session.get(Payout, payout_id, with_for_update=True)
        if payout is not None and payout.status == "pending" and payout.transfer_id is None:
            transfers.make_transfer(gateway_for(current_config()), session, payout)


@app.task(name="payouts.run_schedule", acks_late=True)
def run_schedule() -> int:
    with session_scope() as session:
        made = service.run_schedule(session, current_config().payout_minimums)
    for payout_id in made:
        submit(payout_id)
    return len(made)


@app.task(name="payouts.reserve", acks_late=True)
def hold_reserve() -> int:
    config = current_config()
    with session_scope() as session:
        held = reserve.hold(session, config.reserve_rate)
    with session_scope() as session:
        released = reserve.release(session, config.reserve_days)
    return held + released


@app.task(name="payouts.retry", acks_late=True)
def retry() -> int:
    gateway = gateway_for(current_config())
    with session_scope() as session:
        pending = service.to_submit(session, now_ts() - RETRY_AFTER)
        returning = service.to_reverse(session)
    for payout_id in pending:
        submit(payout_id)
    for payout_id in returning:
        with session_scope() as session:
            payout = session.get(Payout, payout_id, with_for_update=True)
            if payout is not None:
                transfers.reverse_transfer(gateway, session, payout)
    return len(pending) + len(returning)


@app.task(name="payouts.reconcile", acks_late=True)
def reconcile(day: str | None = None) -> bool:
    from payments.reconciliation import service as reconciliation

    if day is None:
        day = datetime.fromtimestamp(now_ts() - 86400, UTC).strftime("%Y-%m-%d")
    with session_scope() as session:
        report = reconciliation.reconcile(session, gateway_for(current_config()), day,
                                          store=True)
    return bool(report["clean"])
