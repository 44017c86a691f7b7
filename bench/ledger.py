"""Ledger benchmark (by hand, never in the test suite).

    python bench/ledger.py --database-url postgresql://postgres@127.0.0.1/creatorpay_bench
    python bench/ledger.py --database-url ... --quick

Creates (and at the end drops) its own database, migrates, seeds 10,000 creators and a first
batch of entries, ANALYZEs (an empty table keeps plans made for zero rows), then measures:

  (a) raw: one hand-written SQL statement per journal, 16 connections, autocommit
  (b) post() from 16 workers over 10,000 creators, one transaction per journal
  (c) post() from 64 workers; every journal touches the same platform accounts
  (d) post_many() in batches of 100, 8 worker processes
  balance read p99 at >= 1,000,000 entries; ``ledger verify`` over >= 10,000,000 entries

The journal is the same everywhere: a tip with the platform fee, three legs (debit
stripe_balance, credit platform_revenue, credit the creator's pending). Workers are
processes (2 cores, one GIL each) running threads; in (d) each worker is its own process.
Ends with one line per target:
``target <name>: <measured> <unit> (goal <op> <value>) PASS|FAIL``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench._pg import create_db, drop_db, pg_url, sa_url  # noqa: E402

CREATORS = 10_000
GROSS, FEE = 1500, 150


def setup_accounts(url: str) -> dict[str, Any]:
    """Create every account through the service; answer the ids the raw writer needs."""
    from payments.db import db, session_scope
    from payments.ledger import service as ledger

    db.configure(sa_url(url))
    with session_scope() as session:
        refs = [ledger.creator_account(c, "pending", "usd") for c in range(1, CREATORS + 1)]
        refs += [ledger.platform_account(p, "usd") for p in ("stripe_balance",
                                                             "platform_revenue")]
        infos = ledger.resolve_accounts(session, refs)
    db.dispose()
    return {
        "pending": [infos[ledger.creator_account(c, "pending", "usd")].id
                    for c in range(1, CREATORS + 1)],
        "stripe": infos[ledger.platform_account("stripe_balance", "usd")].id,
        "revenue": infos[ledger.platform_account("platform_revenue", "usd")].id,
    }


def bulk_seed(url: str, journals: int, ids: dict[str, Any]) -> None:
    """Set-based seed: ``journals`` 2-leg journals (stripe_balance -> a creator's pending),
    with running balances, balance_after and last_entry_id kept exact."""
    pending = ids["pending"]
    with psycopg.connect(pg_url(url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # skip FK checks (seed only)
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("CREATE TEMP TABLE seed_acc (n int PRIMARY KEY, id bigint, bal bigint)")
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO seed_acc SELECT s.n - 1, a.id, a.balance FROM unnest(%s::bigint[]) "
                "WITH ORDINALITY AS s(id, n) JOIN ledger_accounts a ON a.id = s.id",
                (pending,),
            )
        jbase = conn.execute("SELECT COALESCE(MAX(id), 0) FROM ledger_journals").fetchone()[0]
        ebase = conn.execute("SELECT nextval('ledger_entries_id_seq')").fetchone()[0]
        n = len(pending)
        conn.execute(
            "INSERT INTO ledger_journals (id, key, kind, source_type, source_id, effective_at, "
            "created, leg_count) SELECT %s + i, 'seed:' || (%s + i), 'tip', 'tip', "
            "'tip_seed_' || (%s + i), 1700000000 + i / 100, 1700000000, 2 "
            "FROM generate_series(1, %s) i",
            (jbase, jbase, jbase, journals),
        )
        # Entry 2i-1 credits creator (i % n), entry 2i debits stripe_balance.
        conn.execute(
            "INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency, "
            "balance_after) SELECT %(e)s + 2 * i - 1, %(j)s + i, a.id, -100, 'usd', "
            "a.bal - 100 * ((i - 1) / %(n)s + 1) FROM generate_series(1, %(k)s) i "
            "JOIN seed_acc a ON a.n = (i - 1) %% %(n)s",
            {"e": ebase, "j": jbase, "n": n, "k": journals},
        )
        conn.execute(
            "INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency) "
            "SELECT %(e)s + 2 * i, %(j)s + i, %(s)s, 100, 'usd' FROM generate_series(1, %(k)s) i",
            {"e": ebase, "j": jbase, "s": ids["stripe"], "k": journals},
        )
        conn.execute("SELECT setval('ledger_journals_id_seq', %s)", (jbase + journals,))
        conn.execute("SELECT setval('ledger_entries_id_seq', %s)", (ebase + 2 * journals,))
        conn.execute(
            "UPDATE ledger_accounts la SET balance = la.balance - 100 * x.cnt, "
            "last_entry_id = x.last FROM (SELECT a.id, "
            "((%(k)s - 1 - a.n) / %(n)s + 1) AS cnt, "
            "%(e)s + 2 * (a.n + 1 + %(n)s * ((%(k)s - 1 - a.n) / %(n)s)) - 1 AS last "
            "FROM seed_acc a WHERE a.n < %(k)s) x WHERE la.id = x.id",
            {"k": journals, "n": n, "e": ebase},
        )
        conn.execute("DROP TABLE seed_acc")
        conn.execute("SET session_replication_role = DEFAULT")
        conn.execute("VACUUM ANALYZE ledger_accounts")
        conn.execute("ANALYZE ledger_journals")
        conn.execute("ANALYZE ledger_entries")


# ----------------------------------------------------------------------------- workers

RAW_SQL = """
WITH j AS (
  INSERT INTO ledger_journals (key, kind, source_type, source_id, effective_at, created,
                               leg_count)
  VALUES (%(key)s, 'tip', 'tip', %(key)s, %(t)s, %(t)s, 3) RETURNING id
), u AS (
  UPDATE ledger_accounts SET balance = balance - %(net)s,
         last_entry_id = nextval('ledger_entries_id_seq')
  WHERE id = %(acc)s RETURNING balance, last_entry_id
)
INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency, balance_after)
SELECT u.last_entry_id, j.id, %(acc)s, -%(net)s, 'usd', u.balance FROM j, u
UNION ALL SELECT nextval('ledger_entries_id_seq'), j.id, %(stripe)s, %(gross)s, 'usd', NULL
FROM j
UNION ALL SELECT nextval('ledger_entries_id_seq'), j.id, %(rev)s, -%(fee)s, 'usd', NULL FROM j
"""


def _raw_thread(url: str, ids: dict[str, Any], tag: str, box: dict[str, float],
                out: list[int], ready: threading.Barrier) -> None:
    pending = ids["pending"]
    rnd = random.Random(tag)
    n = 0
    with psycopg.connect(pg_url(url), autocommit=True) as conn:
        ready.wait()
        ready.wait()
        deadline = box["deadline"]
        while time.monotonic() < deadline:
            conn.execute(RAW_SQL, {
                "key": f"raw:{tag}:{n}", "t": 1_700_000_000, "net": GROSS - FEE,
                "acc": pending[rnd.randrange(len(pending))], "stripe": ids["stripe"],
                "rev": ids["revenue"], "gross": GROSS, "fee": FEE,
            }, prepare=True)
            n += 1
    out.append(n)


def _post_thread(url: str, ids: dict[str, Any], tag: str, box: dict[str, float],
                 out: list[int], ready: threading.Barrier, batch: int) -> None:
    from payments.db import db
    from payments.ledger import service as ledger

    rnd = random.Random(tag)
    stripe = ledger.platform_account("stripe_balance", "usd")
    revenue = ledger.platform_account("platform_revenue", "usd")
    session = db.session()
    n = 0

    def spec(i: int) -> Any:
        creator = rnd.randrange(1, CREATORS + 1)
        return ledger.JournalSpec(
            f"{tag}:{i}", "tip",
            [ledger.debit(stripe, GROSS), ledger.credit(revenue, FEE),
             ledger.credit(ledger.creator_account(creator, "pending", "usd"), GROSS - FEE)],
            ("tip", f"tip_{tag}_{i}"), 1_700_000_000,
        )

    # A long-running worker has every account it touches cached; warm that up front.
    ledger.resolve_accounts(session, [ledger.creator_account(c, "pending", "usd")
                                      for c in range(1, CREATORS + 1)] + [stripe, revenue])
    session.commit()
    ready.wait()
    ready.wait()
    deadline = box["deadline"]
    try:
        while time.monotonic() < deadline:
            if batch == 1:
                s = spec(n)
                ledger.post(session, s.key, s.kind, s.legs, source=s.source,
                            effective_at=s.effective_at)
            else:
                ledger.post_many(session, [spec(n + k) for k in range(batch)])
            session.commit()
            n += batch
    finally:
        session.close()
    out.append(n)


def _process(kind: str, url: str, ids: dict[str, Any], threads: int, pidx: int,
             start_at: float, seconds: float, batch: int, q: Any) -> None:
    if kind != "raw":
        from payments.db import db

        db.configure(sa_url(url))
    counts: list[int] = []
    ready = threading.Barrier(threads + 1)
    box: dict[str, float] = {}
    target: Callable[..., None] = _raw_thread if kind == "raw" else _post_thread
    ts = []
    for t in range(threads):
        args: tuple[Any, ...] = (url, ids, f"{kind}{batch}-{pidx}-{t}-{os.getpid()}", box,
                                 counts, ready)
        if kind != "raw":
            args += (batch,)
        th = threading.Thread(target=target, args=args)
        th.start()
        ts.append(th)
    ready.wait()  # every thread connected and warmed up
    while time.time() < start_at:
        time.sleep(0.002)
    box["deadline"] = time.monotonic() + seconds
    ready.wait()
    for th in ts:
        th.join()
    q.put(sum(counts))


def measure(kind: str, url: str, ids: dict[str, Any], workers: int, seconds: float,
            batch: int = 1, processes: int = 4) -> float:
    processes = min(processes, workers)
    per = [workers // processes + (1 if i < workers % processes else 0)
           for i in range(processes)]
    q: Any = mp.get_context("fork").Queue()
    start_at = time.time() + 3.0
    procs = [mp.get_context("fork").Process(
        target=_process, args=(kind, url, ids, per[i], i, start_at, seconds, batch, q))
        for i in range(processes)]
    for p in procs:
        p.start()
    total = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def balance_read_p99(url: str, reads: int) -> float:
    from payments.db import db
    from payments.ledger import service as ledger

    db.configure(sa_url(url))
    session = db.session()
    rnd = random.Random(1)
    times = []
    for i in range(reads + 200):
        creator = rnd.randrange(1, CREATORS + 1)
        t0 = time.perf_counter()
        ledger.creator_balances(session, creator)
        session.commit()
        if i >= 200:
            times.append(time.perf_counter() - t0)
    session.close()
    db.dispose()
    times.sort()
    return times[int(len(times) * 0.99) - 1] * 1000


def count_entries(url: str) -> int:
    with psycopg.connect(pg_url(url)) as conn:
        row = conn.execute("SELECT COUNT(*) FROM ledger_entries").fetchone()
        return int(row[0]) if row else 0


def run_verify(url: str) -> tuple[float, bool, int]:
    from payments.db import db, session_scope
    from payments.ledger import service as ledger

    db.configure(sa_url(url))
    with session_scope() as session:
        ledger.checkpoint(session)
    t0 = time.monotonic()
    with session_scope() as session:
        report = ledger.verify(session)
    took = time.monotonic() - t0
    db.dispose()
    return took, report.ok, report.entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default="postgresql://postgres@127.0.0.1/creatorpay_bench")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--batch-workers", type=int, default=8, help="workers in (d)")
    ap.add_argument("--only", default="abcdrv", metavar="PHASES",
                    help="run only these phases: a b c d, r (balance read), v (verify); "
                         "targets whose figures were not measured are not printed")
    args = ap.parse_args()
    url = args.database_url
    quick = args.quick
    seconds = args.seconds or (4.0 if quick else 12.0)
    read_at = 200_000 if quick else 1_000_000
    verify_at = 1_000_000 if quick else 10_000_000

    from payments.migrate import upgrade

    print(f"database: {make_url(url).database} (created fresh; {'quick' if quick else 'full'})")
    create_db(url)
    try:
        upgrade(sa_url(url))
        ids = setup_accounts(url)
        t0 = time.monotonic()
        bulk_seed(url, 100_000, ids)
        print(f"seeded 100,000 journals over {CREATORS:,} creators and ANALYZEd "
              f"in {time.monotonic() - t0:.1f}s")

        only = set(args.only)
        fig: dict[str, float] = {}
        # A short unmeasured warm-up of each path (plans, caches, connections).
        if only & set("bcd"):
            measure("post", url, ids, 8, 1.0, processes=args.processes)
        if "a" in only:
            measure("raw", url, ids, 8, 1.0, processes=args.processes)
            fig["a"] = measure("raw", url, ids, 16, seconds, processes=args.processes)
            print(f"(a) raw SQL, 16 connections:            {fig['a']:9,.0f} journals/s")
        if "b" in only:
            fig["b"] = measure("post", url, ids, 16, seconds, processes=args.processes)
            print(f"(b) post(), 16 workers, {CREATORS:,} creators: {fig['b']:9,.0f} journals/s")
        if "c" in only:
            fig["c"] = measure("post", url, ids, 64, seconds, processes=args.processes)
            print(f"(c) post(), 64 workers, shared accounts: {fig['c']:9,.0f} journals/s")
        if "d" in only:
            # One process per worker, as Celery's prefork workers post: two threads of one
            # process take turns on the GIL while holding their batch's row locks.
            fig["d"] = measure("post", url, ids, args.batch_workers, seconds, batch=100,
                               processes=args.batch_workers)
            print(f"(d) post_many(), batches of 100, {args.batch_workers} workers: "
                  f"{fig['d']:9,.0f} journals/s")

        if "r" in only:
            have = count_entries(url)
            if have < read_at:
                bulk_seed(url, (read_at - have + 1) // 2, ids)
            have = count_entries(url)
            fig["r"] = balance_read_p99(url, 2_000 if quick else 10_000)
            print(f"balance read p99 at {have:,} entries: {fig['r']:.3f} ms")

        if "v" in only:
            t0 = time.monotonic()
            have = count_entries(url)
            if have < verify_at:
                bulk_seed(url, (verify_at - have + 1) // 2, ids)
            have = count_entries(url)
            print(f"seeded to {have:,} entries in {time.monotonic() - t0:.1f}s")
            took, ok, checked = run_verify(url)
            fig["v"] = took if ok else float("inf")
            print(f"ledger verify over {checked:,} entries: {took:.1f}s "
                  f"({'OK' if ok else 'DRIFT'})")
    finally:
        if not args.keep:
            drop_db(url)

    def line(name: str, value: float, unit: str, op: str, goal: float) -> str:
        passed = value >= goal if op == ">=" else value < goal
        return (f"target {name}: {value:.1f} {unit} (goal {op} {goal:g} {unit}) "
                f"{'PASS' if passed else 'FAIL'}")

    if "a" in fig and "b" in fig:
        print(line("post_vs_raw", 100 * fig["b"] / fig["a"], "%", ">=", 30))
    if "b" in fig and "c" in fig:
        print(line("shared_vs_spread", 100 * fig["c"] / fig["b"], "%", ">=", 80))
    if "d" in fig:
        print(line("post_many", fig["d"], "journals/s", ">=", 20_000))
    if "r" in fig:
        print(line("balance_read_p99", fig["r"], "ms", "<", 2))
    if "v" in fig:
        print(line("verify_10m", fig["v"], "s", "<", 30))
    if quick:
        print(f"(quick run: reads at {read_at:,} and verify at {verify_at:,} entries)")


if __name__ == "__main__":
    main()
