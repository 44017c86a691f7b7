"""One plan of subscriptions, renewals, changes, cancellations and a refund, run cleanly and
then with the sandbox's chaos switch on (duplicated, delayed, reordered deliveries), then
every event applied a second time: the same subscription states and the same ledger."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import select, update

from payments.db import session_scope
from payments.ledger import service as ledger
from payments.ledger.models import Entry, Journal, LedgerAccount
from payments.subscriptions.models import Subscription, SubscriptionInvoice
from tests.fixtures.live import LiveApp
from tests.integration.subscriptions.helpers import (
    DAY,
    advance_to,
    failed_events,
    get_sub,
    new_creator,
    new_fan,
    new_tier,
    settle,
    subscribe,
)
from webhooks import worker
from webhooks.models import PROCESSED, RECEIVED, WebhookEvent

FANS = 6


def run(live: LiveApp, chaos: bool) -> dict[str, Any]:
    sandbox = live.sandbox
    switch = (sandbox.chaos(duplicate_rate=0.4, max_delay_ms=400, shuffle=True, seed=11)
              if chaos else contextlib.nullcontext())
    creator = new_creator(live)
    tiers = [new_tier(live, creator, 1000), new_tier(live, creator, 2500)]
    fans = [new_fan(live, f"Fan {i}") for i in range(FANS)]
    with switch:
        subs = [subscribe(live, fan, tiers[i % 2]) for i, fan in enumerate(fans)]
        sandbox.advance(10 * DAY)
        for i, to in ((1, 0), (2, 1)):
            r = live.call("POST", f"/v1/subscriptions/{subs[i]['id']}/change",
                          fans[i]["api_key"], json={"tier": tiers[to]["id"]})
            assert r.status_code == 200, r.text
        r = live.call("POST", f"/v1/subscriptions/{subs[3]['id']}/cancel", fans[3]["api_key"],
                      json={})
        assert r.status_code == 200, r.text
        r = live.call("POST", f"/v1/subscriptions/{subs[4]['id']}/cancel", fans[4]["api_key"],
                      json={"at_period_end": False})
        assert r.status_code == 200, r.text
        settle(live)
        r = live.call("POST", f"/v1/subscriptions/{subs[5]['id']}/refund", creator["api_key"],
                      json={"amount": 700})
        assert r.status_code == 200, r.text
        advance_to(live, max(s["current_period_end"] for s in subs))
        settle(live)
    return snapshot(live, creator, tiers, fans, subs)


def snapshot(live: LiveApp, creator: dict[str, Any], tiers: list[dict[str, Any]],
             fans: list[dict[str, Any]], subs: list[dict[str, Any]]) -> dict[str, Any]:
    tier_pos = {t["id"]: i for i, t in enumerate(tiers)}
    states, invoice_pos = [], {}
    for i, (fan, sub) in enumerate(zip(fans, subs, strict=True)):
        seen = get_sub(live, fan["api_key"], sub["id"])
        invoices = sorted(seen["invoices"], key=lambda v: (v["created"], v["period_start"] or 0,
                                                           v["billing_reason"]))
        for n, inv in enumerate(invoices):
            invoice_pos[inv["id"]] = f"fan{i}#{n}"
        states.append((seen["status"], seen["cancel_at_period_end"], tier_pos[seen["tier"]],
                       seen["amount"],
                       [(v["billing_reason"], v["status"], v["total"], v["amount_paid"],
                         v["amount_refunded"], v["attempt_count"]) for v in invoices]))
    journals = []
    with session_scope() as s:
        for j in s.scalars(select(Journal).where(Journal.source_type == "invoice",
                                                 Journal.source_id.in_(list(invoice_pos)))):
            key = j.key.replace(str(j.source_id), invoice_pos[str(j.source_id)])
            if key.startswith("subscription_refund:"):
                key = f"subscription_refund:{invoice_pos[str(j.source_id)]}"
            legs = sorted((str(kind), str(purpose), int(amount)) for kind, purpose, amount in s.execute(
                select(LedgerAccount.owner_kind, LedgerAccount.purpose, Entry.amount)
                .join(Entry, Entry.account_id == LedgerAccount.id)
                .where(Entry.journal_id == j.id)))
            journals.append((key, j.kind, tuple(legs)))
    balance = live.call("GET", "/v1/creators/me/balance", creator["api_key"]).json()
    return {"states": states, "journals": sorted(journals), "balances": balance,
            "subs": [s["id"] for s in subs]}


def replay_everything(live: LiveApp, sub_ids: list[str]) -> None:
    """Every processed event applied once more, oldest first: duplicates change nothing."""
    with session_scope() as s:
        s.execute(update(WebhookEvent).where(WebhookEvent.status == PROCESSED)
                  .values(status=RECEIVED, next_attempt_at=0))
    worker.drain(live.config)
    settle(live)


def test_chaos_and_replays_give_the_same_states_and_ledger(subs_stack: LiveApp) -> None:
    clean = run(subs_stack, chaos=False)
    stats = subs_stack.sandbox.stats()["webhooks"]
    messy = run(subs_stack, chaos=True)
    injected = subs_stack.sandbox.stats()["webhooks"].get("duplicates_injected", 0)
    assert injected > stats.get("duplicates_injected", 0) + 10
    assert messy["states"] == clean["states"]
    assert messy["journals"] == clean["journals"]
    assert messy["balances"] == clean["balances"]
    expected = [("active", False, 0), ("active", False, 0), ("active", False, 1),
                ("canceled", True, 1), ("canceled", False, 0), ("active", False, 1)]
    assert [s[:3] for s in clean["states"]] == expected
    # A refund, three journals per paid invoice, nothing twice.
    keys = [k for k, _, _ in clean["journals"]]
    assert len(keys) == len(set(keys))
    assert sum(k.startswith("subscription_refund:") for k in keys) == 1

    before = snapshot_again(subs_stack, messy)
    replay_everything(subs_stack, messy["subs"])
    assert snapshot_again(subs_stack, messy) == before
    assert failed_events() == []
    with session_scope() as s:
        assert ledger.verify(s).ok
        # Every paid invoice of ours is booked once.
        paid = s.scalars(select(SubscriptionInvoice.stripe_invoice_id)
                         .where(SubscriptionInvoice.amount_paid > 0)).all()
        for invoice_id in paid:
            assert ledger.journal_by_key(s, f"invoice:{invoice_id}") is not None
        assert s.scalar(select(Subscription.id).where(Subscription.status == "incomplete")) is None


def snapshot_again(live: LiveApp, taken: dict[str, Any]) -> tuple[Any, ...]:
    with session_scope() as s:
        subs = s.execute(select(Subscription.public_id, Subscription.status,
                                Subscription.cancel_at_period_end, Subscription.tier_id,
                                Subscription.current_period_end)
                         .order_by(Subscription.id)).all()
        journals = s.execute(select(Journal.key, Journal.id).order_by(Journal.id)).all()
    return tuple(subs), tuple(journals)
