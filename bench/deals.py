"""Deals benchmark (by hand, never in the test suite).

    python bench/deals.py                    # 2,000 funded deals x 3 milestones
    python bench/deals.py --quick            # 200 deals
    python bench/deals.py --database-url postgresql://postgres@127.0.0.1/creatorpay_bench_deals

Creates (and at the end drops) its own PostgreSQL database, migrates, seeds brands, creators
and funded deals through the service (the funding charge and its balance transaction built
here, as Stripe's events would hand them in), every milestone submitted, ANALYZEs, then:

  (a) approvals: each a transaction that locks its deal, checks, posts the release journals
      (escrow -> creator pending, platform fee) and moves the state; 4 worker processes on
      distinct deals (the first milestone of each deal);
  (b) contention: 4 processes approving the other milestones of the *same* 20 deals, so
      most approvals wait on another's deal lock;
  (c) the auto-approve sweep, as ``deals.auto_approve`` runs it (one process, one
      transaction per milestone), over what is left, once the clock passes review_days;
  (d) the deal read (``deal_view``: milestones, refunds, history) p99.

Afterwards every deal's escrow figures are compared with the ledger and ``ledger verify``
runs. Ends with one line per target:
``target <name>: <measured> <unit> (goal <op> <value>) PASS|FAIL``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import secrets
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._pg import create_db, drop_db, sa_url  # noqa: E402

BASE_TIME = 1_800_000_000
DAY = 86_400
AMOUNTS = (10_000, 20_000, 30_000)


def seed(url: str, deals: int) -> None:
    from payments import clock
    from payments.accounts.models import Brand, Creator
    from payments.db import db, session_scope
    from payments.deals import service
    from payments.ledger import service as ledger

    db.configure(sa_url(url))
    with clock.freeze(BASE_TIME):
        for start in range(0, deals, 100):
            with session_scope() as session:
                for i in range(start, min(deals, start + 100)):
                    brand = Brand(name=f"b{i}", email=f"b{i}@example.com", country="US")
                    creator = Creator(handle=f"c{i}", display_name="C", email=f"c{i}@example.com",
                                      kind="influencer", country="US", default_currency="usd")
                    session.add_all([brand, creator])
                    session.flush()
                    b = service.Actor("brand", brand.id, brand.public_id)
                    c = service.Actor("creator", creator.id, creator.public_id)
                    deal = service.create_deal(session, {
                        "creator": creator.public_id, "title": "T", "brief": "B",
                        "currency": "usd", "review_days": 7,
                        "milestones": [{"title": f"m{k}", "platform": "instagram",
                                        "deliverable": "a post", "amount": a,
                                        "due_date": date(2027, 1, 1)}
                                       for k, a in enumerate(AMOUNTS)]},
                        brand_id=brand.id, fee_bearer="platform", fee_rate=Decimal("0.10"))
                    service.accept(session, deal, c)
                    service.start_funding(session, deal, b)
                    tok = secrets.token_hex(8)
                    ledger.post_many(session, service.funding_succeeded(
                        session, deal, {"id": "ch_" + tok, "payment_intent": "pi_" + tok,
                                        "captured": True},
                        {"id": "txn_" + tok, "amount": deal.amount, "fee": 1_770,
                         "currency": "usd", "created": BASE_TIME}))
                    for m in service.milestones_of(session, deal):
                        service.submit(session, deal, m, c, "https://x.com/p", None)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    db.dispose()


def _milestones(url: str, position: int, deal_ids: list[int] | None = None) -> list[int]:
    from sqlalchemy import select

    from payments.db import db
    from payments.deals.models import Milestone

    db.configure(sa_url(url))
    with db.session() as session:
        stmt = select(Milestone.id).where(Milestone.position == position)
        if deal_ids is not None:
            stmt = stmt.where(Milestone.deal_id.in_(deal_ids))
        found = [int(i) for i in session.scalars(stmt.order_by(Milestone.id))]
    db.dispose()
    return found


def _approver(url: str, milestone_ids: list[int], out: Any) -> None:
    from payments import clock
    from payments.db import db, session_scope
    from payments.deals import service
    from payments.deals.models import Deal, Milestone
    from payments.errors import PaymentsError

    db.configure(sa_url(url))
    done = refused = 0
    with clock.freeze(BASE_TIME + DAY):
        for mid in milestone_ids:
            try:
                with session_scope() as session:
                    ms = session.get(Milestone, mid)
                    assert ms is not None
                    deal = session.get(Deal, ms.deal_id)
                    assert deal is not None
                    service.approve(session, deal, ms, service.Actor("brand", deal.brand_id))
                done += 1
            except PaymentsError:
                refused += 1
    out.put((done, refused))


def approve_in_processes(url: str, ids: list[int], workers: int) -> tuple[float, int, int]:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    chunks = [ids[i::workers] for i in range(workers)]
    procs = [ctx.Process(target=_approver, args=(url, chunk, out)) for chunk in chunks]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    return elapsed, sum(r[0] for r in results), sum(r[1] for r in results)


def sweep(url: str) -> tuple[float, int]:
    from payments import clock
    from payments.db import db, session_scope
    from payments.deals import service

    db.configure(sa_url(url))
    now = BASE_TIME + 8 * DAY
    t0 = time.perf_counter()
    approved = 0
    with clock.freeze(now):
        while True:
            with session_scope() as session:
                due = service.due_milestones(session, now)
            if not due:
                break
            for mid in due:
                with session_scope() as session:
                    approved += service.auto_approve(session, mid, now)
    elapsed = time.perf_counter() - t0
    db.dispose()
    return elapsed, approved


def read_p99(url: str, reads: int) -> float:
    from sqlalchemy import select

    from payments.db import db
    from payments.deals import service
    from payments.deals.models import Deal

    db.configure(sa_url(url))
    with db.session() as session:
        ids = list(session.scalars(select(Deal.id)))
    times = []
    for _ in range(reads):
        with db.session() as session:
            t0 = time.perf_counter()
            deal = session.get(Deal, random.choice(ids))
            assert deal is not None
            service.deal_view(session, deal, service.Actor("brand", deal.brand_id))
            times.append(time.perf_counter() - t0)
    db.dispose()
    times.sort()
    return times[int(len(times) * 0.99) - 1] * 1000


def check_books(url: str) -> tuple[int, bool]:
    from sqlalchemy import select

    from payments.db import db
    from payments.deals import service
    from payments.deals.models import Deal
    from payments.ledger import service as ledger

    db.configure(sa_url(url))
    wrong = 0
    with db.session() as session:
        for deal in session.scalars(select(Deal)):
            e = service.escrow(deal)
            if e["remaining"] != service.ledger_escrow(session, deal) or e["remaining"] < 0:
                wrong += 1
        ok = ledger.verify(session).ok
    db.dispose()
    return wrong, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1/creatorpay_bench_deals")
    parser.add_argument("--deals", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="200 deals")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    deals = 200 if args.quick else args.deals
    url = args.database_url
    create_db(url)
    try:
        from payments.migrate import upgrade

        upgrade(sa_url(url))
        t0 = time.perf_counter()
        seed(url, deals)
        print(f"seeded {deals} funded deals x {len(AMOUNTS)} submitted milestones "
              f"in {time.perf_counter() - t0:.1f}s")

        first = _milestones(url, 0)
        elapsed, done, refused = approve_in_processes(url, first, args.workers)
        rate_a = done / elapsed
        print(f"(a) {done} approvals on distinct deals in {elapsed:.2f}s: {rate_a:.0f}/s "
              f"({refused} refused)")

        hot = _milestones(url, 1, deal_ids=list(range(1, 21)))
        hot = [m for m in hot for _ in range(args.workers)]  # every process tries each
        elapsed, done, refused = approve_in_processes(url, hot, args.workers)
        rate_b = (done + refused) / elapsed
        print(f"(b) {done + refused} approvals racing on 20 deals in {elapsed:.2f}s: "
              f"{rate_b:.0f}/s; {done} won, {refused} refused (409)")
        one_winner = done == len(hot) // args.workers

        elapsed, approved = sweep(url)
        rate_c = approved / elapsed if elapsed else 0.0
        print(f"(c) auto-approve sweep: {approved} milestones in {elapsed:.2f}s: "
              f"{rate_c:.0f}/s")

        p99 = read_p99(url, 500)
        print(f"(d) deal read p99 over 500 reads: {p99:.2f} ms")
        wrong, ok = check_books(url)
        print(f"escrow figures not equal to the ledger: {wrong}; ledger verify: "
              f"{'ok' if ok else 'DRIFT'}")
    finally:
        if not args.keep:
            drop_db(url)

    def line(name: str, value: float, unit: str, op: str, goal: float) -> str:
        passed = value >= goal if op == ">=" else value <= goal
        return (f"target {name}: {value:.1f} {unit} (goal {op} {goal:g}) "
                f"{'PASS' if passed else 'FAIL'}")

    print(line("approvals_per_s", rate_a, "approvals/s", ">=", 200))
    print(line("contended_one_winner", float(one_winner), "bool", ">=", 1))
    print(line("auto_approve_per_s", rate_c, "milestones/s", ">=", 150))
    print(line("deal_read_p99", p99, "ms", "<=", 25))
    print(line("escrow_equals_ledger", float(wrong == 0 and ok), "bool", ">=", 1))


if __name__ == "__main__":
    main()
