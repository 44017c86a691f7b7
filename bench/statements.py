"""Statements at scale (issue 12): one creator with 1,000,000 ledger lines over 24 months.

    python bench/statements.py [--database-url postgresql://postgres@127.0.0.1/creatorpay_bench_statements]
                               [--lines 1000000] [--keep]

Creates and drops its own PostgreSQL database, migrates it, seeds one creator's lines
set-based (tips into pending, processing and platform fees out of it, refunds out of
available; each journal's other leg on the platform), ANALYZEs, makes the 23 ended months
final (``statements.freeze_due``), then measures:

* the monthly statement as JSON (a final month: figures stored, the first 100 lines read,
  dumped through the API's schema); the open month is printed too;
* the CSV of the whole history as a creator gets it: ``GET /v1/creators/me/ledger/export``
  from gunicorn (``payments.wsgi:app``, 1 worker, 4 threads, no access log) over loopback,
  lines/s received and the worker's peak RSS (``VmHWM``) and CPU; then the export's
  generator alone (``COPY ... TO STDOUT`` through psycopg) in a fresh process, for
  comparison;
* the balance read (``ledger.creator_balances``), p99.

Ends with one ``target ...`` line per target.
"""

from __future__ import annotations

import argparse
import calendar
import gc
import http.client
import json
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._pg import create_db, drop_db, pg_url, sa_url  # noqa: E402

MONTHS = 24


def _month_start(now: int, back: int) -> int:
    d = datetime.fromtimestamp(now, UTC)
    n = d.year * 12 + d.month - 1 - back
    return calendar.timegm((n // 12, n % 12 + 1, 1, 0, 0, 0))


def setup(url: str) -> tuple[int, dict[str, int], int]:
    """Migrate, make the creator and its accounts; returns (creator id, account ids, start)."""
    from payments.accounts.models import Creator
    from payments.db import db, session_scope
    from payments.ledger import service as ledger
    from payments.migrate import upgrade

    upgrade(sa_url(url))
    db.configure(sa_url(url))
    start = _month_start(int(time.time()), MONTHS - 1)
    with session_scope() as s:
        c = Creator(handle="bench", display_name="Bench Creator", email="b@example.com",
                    kind="influencer", country="US", default_currency="usd", created=start)
        s.add(c)
        s.flush()
        refs = [ledger.creator_account(c.id, "pending", "usd"),
                ledger.creator_account(c.id, "available", "usd"),
                ledger.platform_account("stripe_balance", "usd")]
        infos = ledger.resolve_accounts(s, refs)
        ids = {"pending": infos[refs[0]].id, "available": infos[refs[1]].id,
               "stripe": infos[refs[2]].id}
        return c.id, ids, start


def seed(url: str, lines: int, ids: dict[str, int], start: int, end: int) -> None:
    span = end - start
    with psycopg.connect(pg_url(url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # seed only: no triggers
        conn.execute("SET work_mem = '256MB'")
        # i %% 10: 0-5 tip +1000 (pending), 6-7 processing fee -30, 8 platform fee -100,
        # 9 refund -500 (available).
        conn.execute(
            "INSERT INTO ledger_journals (id, key, kind, source_type, source_id, effective_at, "
            "created, leg_count) SELECT i, CASE WHEN i %% 10 IN (6, 7) THEN "
            "'tip:s' || i || ':processor_fee' WHEN i %% 10 = 8 THEN 'tip:s' || i || "
            "':platform_fee' ELSE 'seed:' || i END, CASE WHEN i %% 10 < 6 THEN 'tip' "
            "WHEN i %% 10 < 9 THEN 'fee' ELSE 'refund' END, 'tip', 'tip_s' || i, "
            "%(start)s + (i::bigint * %(span)s) / (%(n)s + 1), "
            "%(start)s + (i::bigint * %(span)s) / (%(n)s + 1) + 60, 2 "
            "FROM generate_series(1, %(n)s) i",
            {"start": start, "span": span, "n": lines})
        conn.execute(
            "INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency, "
            "balance_after) SELECT 2 * i - 1, i, acc, amt, 'usd', "
            "SUM(amt) OVER (PARTITION BY acc ORDER BY i) FROM ("
            "SELECT i, CASE WHEN i %% 10 = 9 THEN %(av)s ELSE %(pe)s END AS acc, "
            "CASE WHEN i %% 10 < 6 THEN -1000 WHEN i %% 10 < 8 THEN 30 WHEN i %% 10 = 8 THEN 100 "
            "ELSE 500 END AS amt FROM generate_series(1, %(n)s) i) x",
            {"av": ids["available"], "pe": ids["pending"], "n": lines})
        conn.execute(
            "INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency) "
            "SELECT 2 * i, i, %(st)s, CASE WHEN i %% 10 < 6 THEN 1000 WHEN i %% 10 < 8 THEN -30 "
            "WHEN i %% 10 = 8 THEN -100 ELSE -500 END, 'usd' FROM generate_series(1, %(n)s) i",
            {"st": ids["stripe"], "n": lines})
        conn.execute("SELECT setval('ledger_journals_id_seq', %s)", (lines,))
        conn.execute("SELECT setval('ledger_entries_id_seq', %s)", (2 * lines,))
        conn.execute(
            "UPDATE ledger_accounts a SET balance = x.bal, last_entry_id = x.last FROM ("
            "SELECT account_id, SUM(amount) AS bal, MAX(id) AS last FROM ledger_entries "
            "WHERE account_id IN (%s, %s) GROUP BY account_id) x WHERE a.id = x.account_id",
            (ids["pending"], ids["available"]))
        conn.execute("SET session_replication_role = DEFAULT")
        for table in ("ledger_accounts", "ledger_journals", "ledger_entries"):
            conn.execute(f"VACUUM ANALYZE {table}")


def _csv_child(url: str, accs: list[int], out: Any) -> None:
    from sqlalchemy import create_engine

    from payments.statements.render import history_csv

    engine = create_engine(sa_url(url))
    started = time.perf_counter()
    n = 0
    size = 0
    with engine.connect() as conn:
        for block in history_csv(conn, accs):
            n += block.count(b"\n")
            size += len(block)
    took = time.perf_counter() - started
    out.send({"lines": n - 1, "seconds": took, "bytes": size,
              "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def http_export(url: str, creator_id: int, runs: int = 3) -> list[dict[str, float]]:
    """Download the export from gunicorn ``runs`` times: lines/s, worker peak RSS and CPU."""
    from payments.auth import issue_key
    from payments.db import session_scope
    from payments.devserver import gunicorn_argv

    with session_scope() as s:
        key = issue_key(s, "creator", creator_id, label="bench")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    argv = gunicorn_argv(port, 1, 4)
    # The app logs as deployed: its own JSON request line (payments.observe), no access log.
    env = {**os.environ, "CREATORPAY_DATABASE_URL": sa_url(url), "PYTHONUNBUFFERED": "1",
           "CREATORPAY_STRIPE_SECRET_KEY": "sk_test_bench",
           "CREATORPAY_STRIPE_API_BASE": "http://127.0.0.1:9",
           "CREATORPAY_STRIPE_WEBHOOK_SECRET": "whsec_bench"}
    web = subprocess.Popen(argv, env=env, cwd=str(Path(__file__).resolve().parents[1]),  # noqa: S603 - our own argv
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        worker = int(subprocess.check_output(["pgrep", "-P", str(web.pid)]).split()[0])  # noqa: S603, S607
        for _ in range(runs):
            cpu = _proc_cpu(worker)
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/v1/creators/me/ledger/export",
                         headers={"Authorization": f"Bearer {key}"})
            resp = conn.getresponse()
            assert resp.status == 200, resp.status
            assert resp.getheader("Transfer-Encoding") == "chunked"
            n = size = 0
            while block := resp.read1(1 << 20):
                n += block.count(b"\n")
                size += len(block)
            took = time.perf_counter() - started
            out.append({"lines": n - 1, "seconds": took, "bytes": size,
                        "worker_cpu": _proc_cpu(worker) - cpu,
                        "maxrss_mb": _peak_rss_mb(worker)})
    finally:
        web.terminate()
        web.wait(timeout=30)
    return out


def target(name: str, measured: float, unit: str, op: str, goal: float) -> None:
    ok = measured < goal if op == "<" else measured > goal
    print(f"target {name}: {measured:.2f} {unit} (goal {op} {goal:g}) {'PASS' if ok else 'FAIL'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url",
                    default="postgresql://postgres@127.0.0.1/creatorpay_bench_statements")
    ap.add_argument("--lines", type=int, default=1_000_000, help="the creator's ledger lines")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()
    url = args.database_url
    create_db(url)
    try:
        run(url, args.lines)
    finally:
        if not args.keep:
            from payments.db import db

            db.dispose()
            drop_db(url)


def run(url: str, lines: int) -> None:
    from payments.accounts.models import Creator
    from payments.db import session_scope
    from payments.ledger import service as ledger
    from payments.statements import service
    from payments.statements.views import StatementSchema

    creator_id, ids, start = setup(url)
    now = int(time.time())
    this = service.period_of(now)
    end = service.bounds(this)[0]  # history fills the 23 ended months... and the open one
    end = now
    t0 = time.perf_counter()
    seed(url, lines, ids, start, end)
    print(f"seeded {lines:,} lines over {MONTHS} months in {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    with session_scope() as s:
        c = s.get(Creator, creator_id)
        assert c is not None
        made = service.freeze_due(s, c)
    print(f"froze {made} months in {time.perf_counter() - t0:.1f}s")

    schema = StatementSchema()
    final_month = service.shift(this, -6)

    def timed(period: str, runs: int = 30) -> tuple[float, float, dict[str, Any]]:
        times = []
        body: dict[str, Any] = {}
        for _ in range(runs):
            with session_scope() as s:
                c = s.get(Creator, creator_id)
                assert c is not None
                t = time.perf_counter()
                body = service.statement(s, c, "usd", period)
                json.dumps(schema.dump(body))
                times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times), sorted(times)[int(len(times) * 0.95) - 1], body

    med, p95, body = timed(final_month)
    print(f"statement {final_month} (final, {body['line_count']:,} lines): "
          f"median {med:.1f} ms, p95 {p95:.1f} ms")
    omed, op95, obody = timed(this, runs=10)
    print(f"statement {this} (open, {obody['line_count']:,} lines): "
          f"median {omed:.1f} ms, p95 {op95:.1f} ms")
    assert body["opening_balance"] + sum(body[k] for k in service.FIGURES) \
        == body["closing_balance"]

    runs = http_export(url, creator_id)
    for r in runs:
        print(f"history CSV over HTTP (gunicorn): {r['lines']:,} lines, {r['bytes'] / 1e6:.0f} MB "
              f"in {r['seconds']:.2f}s = {r['lines'] / r['seconds']:,.0f} lines/s; worker CPU "
              f"{r['worker_cpu']:.2f}s, worker peak RSS {r['maxrss_mb']:.0f} MB")
        assert r["lines"] == lines
    http_rate = statistics.median(r["lines"] / r["seconds"] for r in runs)  # of 3 downloads
    http_rss = max(r["maxrss_mb"] for r in runs)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_csv_child, args=(url, [ids["pending"], ids["available"]], child))
    proc.start()
    result = parent.recv()
    proc.join()
    rate = result["lines"] / result["seconds"]
    print(f"history CSV generator alone: {result['lines']:,} lines, "
          f"{result['bytes'] / 1e6:.0f} MB in {result['seconds']:.2f}s; "
          f"peak RSS of that process {result['maxrss_mb']:.0f} MB")
    assert result["lines"] == lines

    times = []
    gc.collect()
    gc.disable()  # the read's own cost, not a collection that happens to land in it
    cpu_times = []
    with session_scope() as s:
        for _ in range(2000):
            t, c = time.perf_counter(), time.thread_time()
            ledger.creator_balances(s, creator_id)
            times.append((time.perf_counter() - t) * 1000)
            cpu_times.append((time.thread_time() - c) * 1000)
    gc.enable()
    p99 = sorted(times)[int(len(times) * 0.99) - 1]
    print(f"balance read: median {statistics.median(times):.3f} ms, p99 {p99:.3f} ms, max "
          f"{max(times):.3f} ms; our CPU per read p99 "
          f"{sorted(cpu_times)[int(len(cpu_times) * 0.99) - 1]:.3f} ms (the rest of a slow "
          "read is waiting: for PostgreSQL's answer, or for a core)")

    target("statement_json_final_month", med, "ms", "<", 50)
    print(f"history CSV generator alone: {rate:,.0f} lines/s (not a target)")
    target("history_csv_rate", http_rate, "lines/s", ">", 250_000)
    target("history_csv_peak_memory", max(http_rss, result["maxrss_mb"]), "MB", "<", 150)
    target("balance_read_p99", p99, "ms", "<", 2)


if __name__ == "__main__":
    main()
