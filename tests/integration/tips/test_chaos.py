"""The same ~200 Stripe events delivered cleanly, then with the sandbox's chaos switch on
(duplicates, random delays, reordering): the ledger comes out the same.

Two runs of one plan of tips and refunds over HTTP, each with its own creators; the ledgers
are compared after renaming each run's creators and tips to their place in the plan.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select

from payments.db import session_scope
from payments.ledger import service as ledger
from payments.ledger.models import Entry, Journal, LedgerAccount
from tests.fixtures.live import LiveApp
from tests.fixtures.workers import wait_for
from tests.integration.tips.test_flow import new_creator, new_fan
from webhooks.models import FAILED, PROCESSED, WebhookEvent

CURRENCIES = ("usd", "usd", "jpy", "eur")
TIPS = 60
# Every REFUND_EVERY-th tip is partly refunded right away, so refund events race the
# charge's own events.
REFUND_EVERY = 6


def plan() -> list[tuple[int, int, int | None]]:
    """(creator index, amount, refund amount or None) for each tip."""
    out = []
    for i in range(TIPS):
        creator = i % len(CURRENCIES)
        amount = (300 + 37 * i) * (1 if CURRENCIES[creator] != "jpy" else 3)
        refund = amount // 3 if i % REFUND_EVERY == REFUND_EVERY - 1 else None
        out.append((creator, amount, refund))
    return out


def inbox_counts() -> dict[str, int]:
    with session_scope() as s:
        rows = s.execute(select(WebhookEvent.status, func.count())
                         .group_by(WebhookEvent.status)).all()
    return {status: int(n) for status, n in rows}


def run(live: LiveApp, chaos: bool) -> dict[str, Any]:
    sandbox = live.sandbox
    creators = [new_creator(live, c) for c in CURRENCIES]
    fan = new_fan(live)
    before = inbox_counts()
    stats_before = sandbox.stats()["webhooks"]

    def tip(n: int) -> str:
        c, amount, refund = plan()[n]
        r = live.call("POST", "/v1/tips", fan["api_key"], json={
            "creator": creators[c]["handle"], "amount": amount, "currency": CURRENCIES[c],
            "payment_method": "pm_card_visa"})
        assert r.status_code == 201, r.text
        tip_id = str(r.json()["id"])
        if refund is not None:
            rr = live.call("POST", f"/v1/tips/{tip_id}/refund", creators[c]["api_key"],
                           json={"amount": refund})
            assert rr.status_code == 200, rr.text
        return tip_id

    switch = (sandbox.chaos(duplicate_rate=0.3, max_delay_ms=400, shuffle=True, seed=7)
              if chaos else contextlib.nullcontext())
    with switch, ThreadPoolExecutor(max_workers=6) as pool:
        tip_ids = list(pool.map(tip, range(TIPS)))
        sandbox.wait_deliveries(timeout=60, endpoint_id=live.endpoint_id)

    wait_for(lambda: inbox_counts().get("received", 0) == 0, timeout=60)
    after = inbox_counts()
    assert after.get(FAILED, 0) == before.get(FAILED, 0), after
    return {
        "stored": after.get(PROCESSED, 0) - before.get(PROCESSED, 0),
        **{k: int(stats.get(k, 0)) - int(stats_before.get(k, 0))
           for stats in [sandbox.stats()["webhooks"]]
           for k in ("delivered", "duplicates_injected")},
        "ledger": snapshot(live, creators, tip_ids),
        "tips": [(live.call("GET", f"/v1/tips/{t}", fan["api_key"]).json()["status"],
                  live.call("GET", f"/v1/tips/{t}", fan["api_key"]).json()["amount_refunded"])
                 for t in tip_ids],
    }


def snapshot(live: LiveApp, creators: list[dict[str, Any]], tip_ids: list[str]
             ) -> dict[str, Any]:
    """Balances per creator (by plan position) and every journal of the run's tips, with
    tip and creator ids replaced by their plan positions."""
    from payments.accounts.models import Creator

    balances, owed = [], []
    for c in creators:
        r = live.call("GET", "/v1/creators/me/balance", c["api_key"])
        assert r.status_code == 200, r.text
        balances.append(sorted((b["currency"], b["pending"], b["available"], b["reserved"])
                               for b in r.json()["balances"]))
        owed.append(sorted((b["currency"], b["pending"] + b["available"] + b["reserved"])
                           for b in r.json()["balances"]))
    with session_scope() as s:
        creator_pos = {s.scalar(select(Creator.id).where(Creator.public_id == c["id"])): i
                       for i, c in enumerate(creators)}
        tip_pos = {t: i for i, t in enumerate(tip_ids)}
        journals = s.scalars(select(Journal).where(Journal.source_type == "tip",
                                                   Journal.source_id.in_(tip_ids))).all()
        out = []
        for j in journals:
            pos = tip_pos[str(j.source_id)]
            key = j.key.replace(str(j.source_id), f"tip#{pos}")
            if key.startswith("tip_refund:"):  # keyed by Stripe's refund id
                key = f"tip_refund:tip#{pos}"
            legs = []
            for amount, kind, owner, purpose in s.execute(
                select(Entry.amount, LedgerAccount.owner_kind, LedgerAccount.owner_id,
                       LedgerAccount.purpose)
                .join(LedgerAccount, LedgerAccount.id == Entry.account_id)
                .where(Entry.journal_id == j.id)
            ):
                who = "platform" if kind == "platform" else f"creator#{creator_pos[owner]}"
                legs.append((who, purpose, int(amount)))
            out.append((key, j.kind, tuple(sorted(legs))))
    # What each journal does to what the platform owes each creator, whichever bucket.
    collapsed = []
    for key, kind, legs in out:
        net: dict[tuple[str, str], int] = {}
        for who, purpose, amount in legs:
            account = (who, "owed" if who != "platform" else purpose)
            net[account] = net.get(account, 0) + amount
        collapsed.append((key, kind, tuple(sorted(net.items()))))
    return {"balances": balances, "owed": owed, "journals": sorted(out),
            "journals_by_owner": sorted(collapsed)}


def test_chaos_delivery_gives_the_same_ledger_as_a_clean_one(live_stack: LiveApp) -> None:
    clean = run(live_stack, chaos=False)
    messy = run(live_stack, chaos=True)

    # ~200 events per run (the clean run delivers each once), the handled ones stored once
    # each, duplicates or not.
    assert 190 <= clean["delivered"] <= 230, clean
    assert clean["duplicates_injected"] == 0
    assert messy["duplicates_injected"] > 20  # chaos really duplicated deliveries
    assert messy["delivered"] == clean["delivered"] + messy["duplicates_injected"]
    assert messy["stored"] == clean["stored"]

    assert messy["tips"] == clean["tips"]
    assert messy["ledger"]["owed"] == clean["ledger"]["owed"]
    assert messy["ledger"]["journals_by_owner"] == clean["ledger"]["journals_by_owner"]
    refunds = sum(1 for _, _, r in plan() if r is not None)
    keys = [k for k, _, _ in clean["ledger"]["journals"]]
    assert len(keys) == len(set(keys))
    assert sum(k.startswith("tip_refund:") for k in keys) == refunds
    assert sum(k.startswith("tip:") and k.count(":") == 1 for k in keys) == TIPS  # gross

    with session_scope() as s:
        report = ledger.verify(s)
    assert report.ok, report

    # The same buckets too: a refund that overtakes its charge's events posts the earning
    # first, so what is pending and what is available never depends on delivery order.
    assert messy["ledger"]["balances"] == clean["ledger"]["balances"]
    assert messy["ledger"]["journals"] == clean["ledger"]["journals"]
    for run_ in (clean, messy):
        for bal in run_["ledger"]["balances"]:
            for _, _, available, _ in bal:
                assert available >= 0
