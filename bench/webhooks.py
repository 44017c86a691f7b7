"""Webhook benchmark (by hand, never in the test suite), issue 5.

    python bench/webhooks.py                      # 20,000 tip events
    python bench/webhooks.py --quick              # 3,000 events, short runs
    python bench/webhooks.py --events 50000 --gunicorn-workers 2 --gunicorn-threads 16
    python bench/webhooks.py --phases ab          # only (a) and (b)

One run, on PostgreSQL and Redis, with gunicorn serving ``payments.wsgi:app`` with the same
worker settings throughout, measures side by side:

  (a) a trivial JSON endpoint of the same app: ``GET /healthz``;
  (b) signed webhook ingestion: ``POST /webhooks/stripe`` of distinct, really signed
      ``charge.succeeded`` events (verify, store, commit, notify -> enqueue), workers stopped;
  (c) end to end: 2 Celery worker processes running, every event delivered again over HTTP,
      from the first delivery until every event is ``processed`` and every tip's journals
      are posted (fees from the sandbox's balance transactions).

Setup: its own database (created, migrated, ANALYZEd, dropped at the end), its own Redis
database (``--redis-url``, default db 11: only the queue keys of this run are deleted), the
offline Stripe sandbox as a subprocess with no webhook endpoint (only the load generator
delivers). Tips are real: one PaymentIntent per tip is created and confirmed server-side in
the sandbox with ``pm_card_visa`` (so the sandbox makes the charge and its balance
transaction), the Tip rows are inserted in bulk as the tips API would leave them, and the
events are the sandbox's own ``charge.succeeded`` events, signed at delivery time with the
endpoint secret.

The load generator runs in separate processes (``--clients`` processes x ``--connections``
keep-alive ``http.client`` connections each), loopback only, bounded in count and time. Each
phase also prints the CPU time each part used per request (gunicorn workers, our database's
backends, Celery processes, sandbox, load generator, from ``/proc``): on a shared 2-core
machine that is steadier than the rates, and says where a target is lost.
Ends with one line per target: ``target <name>: <measured> <unit> (goal ...) PASS|FAIL``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench._pg import admin_conn, create_db, drop_db, pg_url, sa_url  # noqa: E402
from payments.gateway import sign_payload  # noqa: E402

SECRET = "whsec_bench_" + "5" * 24
API_KEY = "sk_test_creatorpay_bench"
CREATORS = 1_000
INGEST_GOAL = 50.0  # (b) as % of (a)
E2E_GOAL = 1_000.0  # events/s


# ----------------------------------------------------------------------------- plumbing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")
        time.sleep(0.1)


def redis_queue_keys(redis_url: str) -> list[str]:
    return ["default", "webhooks", "_kombu.binding.default", "_kombu.binding.webhooks",
            "unacked", "unacked_index", "unacked_mutex"]


def purge_queues(redis_url: str) -> None:
    """Delete this run's queue keys in our own Redis database (never FLUSHALL)."""
    import redis

    r = redis.Redis.from_url(redis_url)
    r.delete(*redis_queue_keys(redis_url))
    r.close()


@dataclass
class Stack:
    """The processes of one run, stopped in reverse order."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        out = log.open("ab")
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out,  # noqa: S603
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))

    def stop(self, name: str, timeout: float = 20.0) -> None:
        for i, (n, proc) in enumerate(self.procs):
            if n == name:
                _terminate(proc, timeout)
                del self.procs[i]
                return

    def stop_all(self) -> None:
        while self.procs:
            _, proc = self.procs.pop()
            _terminate(proc, 20.0)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- CPU accounting

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


class CpuMeter:
    """CPU seconds used by our processes (with their children) and our database's backends."""

    def __init__(self, stack: Stack, url: str) -> None:
        self.stack = stack
        self.dbname = make_url(url).database
        self.url = url

    def pids(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for name, proc in self.stack.procs:
            group = "celery" if name.startswith("celery") else name
            groups.setdefault(group, []).extend([proc.pid, *children(proc.pid)])
        with admin_conn(self.url) as conn:
            groups["postgres"] = [int(r[0]) for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.dbname,))]
        return groups

    def snapshot(self) -> dict[str, dict[int, float]]:
        return {g: {p: proc_cpu(p) for p in pids} for g, pids in self.pids().items()}

    @staticmethod
    def used(before: dict[str, dict[int, float]],
             after: dict[str, dict[int, float]]) -> dict[str, float]:
        return {g: sum(cpu - before.get(g, {}).get(p, 0.0) for p, cpu in procs.items())
                for g, procs in after.items()}


def cpu_line(used: dict[str, float], count: int, load_cpu: float) -> str:
    parts = [f"{g} {1e6 * s / count:.0f}" for g, s in sorted(used.items()) if s > 0]
    parts.append(f"load generator {1e6 * load_cpu / count:.0f}")
    total = sum(used.values()) + load_cpu
    return f"CPU us per request: {', '.join(parts)}; total {1e6 * total / count:.0f}"


# ----------------------------------------------------------------------------- sandbox


class SandboxClient:
    """Keep-alive JSON/form client for the sandbox (one per thread)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, form: dict[str, str] | None = None,
             idem: str | None = None) -> dict[str, Any]:
        from urllib.parse import urlencode

        headers = {"Authorization": f"Bearer {API_KEY}"}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if idem:
            headers["Idempotency-Key"] = idem
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"sandbox {method} {path}: {resp.status} {data[:300]!r}")
        return dict(json.loads(data))


def create_payments(port: int, tips: list[dict[str, Any]], threads: int = 4) -> None:
    """One PaymentIntent per tip, confirmed server-side with pm_card_visa; fills ``pi``."""
    it = iter(range(len(tips)))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        client = SandboxClient(port)
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            tip = tips[i]
            try:
                pi = client.call("POST", "/v1/payment_intents", {
                    "amount": str(tip["amount"]), "currency": "usd",
                    "payment_method": "pm_card_visa", "confirm": "true",
                    "description": f"Tip to {tip['handle']}",
                    "metadata[creatorpay_kind]": "tip", "metadata[tip_id]": tip["public_id"],
                    "metadata[creator_id]": tip["creator_public_id"],
                }, idem=f"tip-{i + 1}")
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return
            tip["pi"] = pi["id"]
            tip["client_secret"] = pi["client_secret"]

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]


def fetch_events(port: int, want: int) -> list[bytes]:
    """The sandbox's own ``charge.succeeded`` events, oldest first, as raw JSON bodies."""
    client = SandboxClient(port)
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        path = "/v1/events?type=charge.succeeded&limit=100"
        if after:
            path += f"&starting_after={after}"
        page = client.call("GET", path)
        out.extend(page["data"])
        if not page["has_more"] or not page["data"]:
            break
        after = page["data"][-1]["id"]
    if len(out) != want:
        raise RuntimeError(f"expected {want} charge.succeeded events, the sandbox has {len(out)}")
    out.reverse()
    return [json.dumps(e, separators=(",", ":")).encode() for e in out]


# ----------------------------------------------------------------------------- seeding


def seed(url: str, sandbox_port: int, n: int, rng: random.Random) -> tuple[list[bytes],
                                                                          dict[str, int]]:
    """Creators, tips paid in the sandbox, and their charge.succeeded events."""
    from payments.ids import new_id

    with psycopg.connect(pg_url(url), autocommit=True) as conn:
        now = int(time.time())
        creators = []
        for i in range(CREATORS):
            handle = f"bench_{i:05d}"
            creators.append((new_id("creator"), handle, f"Creator {i}", f"{handle}@example.com",
                             rng.choice(("kol", "influencer")), "US", "usd", "[500, 1000, 2000]",
                             now))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO creators (public_id, handle, display_name, email, kind, country, "
                "default_currency, suggested_amounts, created) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s::json, %s)", creators)
        rows = conn.execute("SELECT id, public_id, handle FROM creators ORDER BY id").fetchall()
    tips = []
    for _ in range(n):
        cid, cpub, handle = rng.choice(rows)
        tips.append({"public_id": new_id("tip"), "creator_id": cid, "creator_public_id": cpub,
                     "handle": handle, "amount": rng.choice((300, 500, 1000, 1500, 2000, 5000))
                     + rng.randrange(0, 100)})
    t0 = time.monotonic()
    create_payments(sandbox_port, tips)
    took = time.monotonic() - t0
    print(f"  sandbox: {n} PaymentIntents confirmed in {took:.1f} s ({n / took:.0f}/s)",
          flush=True)
    with psycopg.connect(pg_url(url), autocommit=True) as conn:
        now = int(time.time())
        with conn.cursor() as cur, cur.copy(
            "COPY tips (public_id, creator_id, guest_email, guest_name, amount, currency, "
            "message, anonymous, payment_status, payment_intent_id, client_secret, "
            "amount_refunded, created, succeeded_at) FROM STDIN"
        ) as copy:
            for i, t in enumerate(tips):
                copy.write_row((t["public_id"], t["creator_id"], f"fan{i}@example.com",
                                f"Fan {i}", t["amount"], "usd", "Thanks!", False, "succeeded",
                                t["pi"], t["client_secret"], 0, now, now))
    events = fetch_events(sandbox_port, n)
    return events, expected_totals(events)


def expected_totals(events: Sequence[bytes]) -> dict[str, int]:
    """What the ledger must hold once every event is processed (fees from the sandbox)."""
    from decimal import Decimal

    from payments.money import split_fee

    gross = 0
    journals = 0
    for raw in events:
        charge = json.loads(raw)["data"]["object"]
        amount = int(charge["amount"])
        gross += amount
        platform_fee, _ = split_fee(amount, Decimal("0.10"))
        journals += 1 + 1 + (1 if platform_fee else 0)  # the sandbox always charges a fee
    return {"gross": gross, "journals": journals}


def analyze(url: str) -> None:
    with psycopg.connect(pg_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# ----------------------------------------------------------------------------- load generator


@dataclass
class LoadSpec:
    port: int
    method: str
    path: str
    seconds: float  # stop after this long
    bodies: Sequence[bytes] | None = None  # None: GET with no body; else each sent once
    connections: int = 8


def _client_proc(spec: LoadSpec, part: int, parts: int, start: Any, out: Any) -> None:
    """One load-generator process: ``spec.connections`` threads, one keep-alive connection
    each. Reports (count, errors, first start, last end, latencies sample)."""
    bodies = None if spec.bodies is None else spec.bodies[part::parts]
    lock = threading.Lock()
    state = {"next": 0, "count": 0, "errors": 0}
    lat: list[float] = []
    starts: list[float] = []
    ends: list[float] = []
    start.wait()
    deadline = time.monotonic() + spec.seconds

    def take() -> int | None:
        with lock:
            i = state["next"]
            if bodies is not None and i >= len(bodies):
                return None
            state["next"] = i + 1
            return i

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", spec.port, timeout=60)
        mine: list[float] = []
        count = errors = 0
        first = last = 0.0
        while time.monotonic() < deadline:
            i = take()
            if i is None:
                break
            headers = {"Connection": "keep-alive"}
            body = None
            if bodies is not None:
                body = bodies[i]
                headers["Content-Type"] = "application/json"
                headers["Stripe-Signature"] = sign_payload(body, SECRET)
            t = time.time()
            if not first:
                first = t
            try:
                conn.request(spec.method, spec.path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", spec.port, timeout=60)
            last = time.time()
            if ok:
                count += 1
            else:
                errors += 1
            if count % 16 == 0:
                mine.append(last - t)
        conn.close()
        with lock:
            state["count"] += count
            state["errors"] += errors
            lat.extend(mine)
            if first:
                starts.append(first)
                ends.append(last)

    threads = [threading.Thread(target=work) for _ in range(spec.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    usage = os.times()
    out.put({"cpu": usage.user + usage.system, "count": state["count"], "errors": state["errors"],
             "first": min(starts) if starts else 0.0, "last": max(ends) if ends else 0.0,
             "lat": lat})


@dataclass
class LoadResult:
    count: int
    errors: int
    first: float
    last: float
    latencies: list[float]
    cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.count / max(1e-9, self.last - self.first)

    def pct(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000


class Load:
    """Runs a LoadSpec in ``clients`` processes; ``begin()`` then ``join()``."""

    def __init__(self, spec: LoadSpec, clients: int) -> None:
        ctx = mp.get_context("fork")
        self.start = ctx.Event()
        self.out = ctx.Queue()
        self.parts: list[dict[str, Any]] = []
        self.procs = [ctx.Process(target=_client_proc, args=(spec, i, clients, self.start,
                                                              self.out), daemon=True)
                      for i in range(clients)]
        for p in self.procs:
            p.start()
        time.sleep(0.3)  # let them import and connect before the gun

    def begin(self) -> None:
        self.start.set()

    def finished(self) -> bool:
        """True once every process has reported (never blocks)."""
        while len(self.parts) < len(self.procs):
            try:
                self.parts.append(self.out.get_nowait())
            except queue.Empty:
                return False
        return True

    def join(self) -> LoadResult:
        while len(self.parts) < len(self.procs):
            self.parts.append(self.out.get(timeout=3600))
        for p in self.procs:
            p.join()
        parts = self.parts
        started = [p["first"] for p in parts if p["first"]]
        return LoadResult(sum(p["count"] for p in parts), sum(p["errors"] for p in parts),
                          min(started) if started else 0.0,
                          max(p["last"] for p in parts), [x for p in parts for x in p["lat"]],
                          sum(p["cpu"] for p in parts))


def run_load(spec: LoadSpec, clients: int, meter: CpuMeter | None = None) -> LoadResult:
    load = Load(spec, clients)
    before = meter.snapshot() if meter else {}
    load.begin()
    res = load.join()
    if meter is not None and res.count:
        print("      " + cpu_line(meter.used(before, meter.snapshot()), res.count, res.cpu),
              flush=True)
    return res


# ----------------------------------------------------------------------------- phases


def inbox_counts(url: str) -> tuple[int, int, int, int]:
    """(processed, failed, stored, journals): full counts, for before and after a phase."""
    with psycopg.connect(pg_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'processed'), "
            "count(*) FILTER (WHERE status = 'failed'), count(*) FROM webhook_events"
        ).fetchone()
        journals = conn.execute("SELECT count(*) FROM ledger_journals").fetchone()
    assert row is not None and journals is not None
    return int(row[0]), int(row[1]), int(row[2]), int(journals[0])


class Progress:
    """Cheap polling while (c) runs: rows stored (the id sequence restarts at the TRUNCATE)
    and rows still waiting (the claim index), on one connection."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(pg_url(url), autocommit=True)
        self.last = 0.0

    def poll(self) -> tuple[int, int]:
        """(rows stored, rows waiting): exact once a second, else whether any waits (cheap:
        the claim index), so that watching costs the database next to nothing."""
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            sql = ("SELECT (SELECT COALESCE(max(id), 0) FROM webhook_events), "
                   "(SELECT count(*) FROM webhook_events WHERE status = 'received')")
        else:
            sql = ("SELECT (SELECT COALESCE(max(id), 0) FROM webhook_events), "
                   "(SELECT count(*) FROM (SELECT 1 FROM webhook_events "
                   "WHERE status = 'received' LIMIT 1) x)")
        row = self.conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def close(self) -> None:
        self.conn.close()


def reset_inbox(url: str) -> None:
    with psycopg.connect(pg_url(url), autocommit=True) as conn:
        conn.execute("TRUNCATE webhook_events RESTART IDENTITY")
        conn.execute("VACUUM ANALYZE webhook_events")


def check_ledger(url: str, expected: dict[str, int]) -> str:
    """The creators' pending balances against the sandbox's own figures."""
    with psycopg.connect(pg_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE kind = 'tip'), "
            "(SELECT -COALESCE(sum(balance), 0) FROM ledger_accounts "
            " WHERE owner_kind = 'creator' AND purpose = 'pending'), "
            "(SELECT count(*) FROM tips WHERE charge_id IS NOT NULL) FROM ledger_journals"
        ).fetchone()
        fees = conn.execute(
            "SELECT COALESCE(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_journals j "
            "ON j.id = e.journal_id WHERE j.kind = 'fee' AND e.amount > 0"
        ).fetchone()
    assert row is not None and fees is not None
    tip_journals, pending, linked = int(row[0]), int(row[1]), int(row[2])
    ok = pending + int(fees[0]) == expected["gross"]
    return (f"{tip_journals} tip journals, {linked} tips linked to their charge, creators' "
            f"pending {pending} = gross {expected['gross']} - fees {int(fees[0])}: "
            f"{'ok' if ok else 'MISMATCH'}")


def wait_workers_ready(log: Path, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if text.count(" ready.") >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"Celery workers not ready after {timeout:.0f} s; see {log}")


def end_to_end(args: argparse.Namespace, url: str, env: dict[str, str], stack: Stack,
               logdir: Path, web_port: int, events: Sequence[bytes],
               expected: dict[str, int], meter: CpuMeter) -> tuple[float, float, float]:
    """(c): returns (events/s end to end, ingest rate, seconds)."""
    n = len(events)
    log = logdir / "celery.log"
    for i in range(args.celery_workers):
        stack.start(f"celery{i}", [
            sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", "default,webhooks",
            "--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-n", f"bench{i}@%h",
        ], env, log)
    wait_workers_ready(log, args.celery_workers)
    load = Load(LoadSpec(web_port, "POST", "/webhooks/stripe", seconds=args.max_seconds,
                         bodies=events, connections=args.connections), args.clients)
    before = meter.snapshot()
    progress = Progress(url)
    load.begin()
    timeline: list[tuple[float, int, int]] = []
    deadline = time.time() + args.max_seconds
    done_at = None
    while time.time() < deadline:
        stored, waiting = progress.poll()
        now = time.time()
        if waiting > 1 or not timeline:
            timeline.append((now, stored - waiting, stored))
        if waiting == 0 and load.finished():
            processed, failed, stored, journals = inbox_counts(url)
            if processed + failed >= n and journals >= expected["journals"]:
                done_at = now
                break
        time.sleep(0.1)
    used = meter.used(before, meter.snapshot())
    progress.close()
    res = load.join()
    processed, failed, stored, journals = inbox_counts(url)
    print("  (c) " + cpu_line(used, n, res.cpu).replace("request", "event"), flush=True)
    if res.errors:
        print(f"  (c) {res.errors} deliveries failed", flush=True)
    if done_at is None:
        print(f"  (c) NOT DONE after {args.max_seconds:.0f} s: processed {processed}, failed "
              f"{failed}, stored {stored}, journals {journals}/{expected['journals']}",
              flush=True)
        done_at = time.time()
    secs = done_at - res.first
    rate = processed / secs if secs > 0 else 0.0
    print(f"  (c) delivered {res.count} in {res.last - res.first:.2f} s ({res.rate:.0f}/s); "
          f"all {processed} processed ({failed} failed), {journals} journals posted "
          f"{secs:.2f} s after the first delivery (polled every 0.1 s)", flush=True)
    # Per second: rows stored and rows still waiting, to show the pace is sustained.
    line = []
    for sec in range(1, int(secs) + 2):
        upto = [(st, st - pr) for ts, pr, st in timeline if ts <= res.first + sec]
        if upto:
            line.append(f"{upto[-1][0]}/{upto[-1][1]}")
    print("  (c) stored/waiting after each second: " + ", ".join(line), flush=True)
    print("  (c) " + check_ledger(url, expected), flush=True)
    return rate, res.rate, secs


def main() -> int:  # noqa: C901 - one linear script
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url",
                    default="postgresql://postgres@127.0.0.1:5432/creatorpay_bench_webhooks")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="3,000 events, short runs")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of (a) and (b)")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--max-seconds", type=float, default=300.0, help="give up on (c) after")
    ap.add_argument("--gunicorn-workers", type=int, default=2)
    ap.add_argument("--gunicorn-threads", type=int, default=16)
    ap.add_argument("--clients", type=int, default=2, help="load generator processes")
    ap.add_argument("--connections", type=int, default=16, help="keep-alive connections each")
    ap.add_argument("--celery-workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the database and logs")
    ap.add_argument("--phases", default="abc", help="which of a, b, c to run (default abc)")
    args = ap.parse_args()
    if args.quick:
        args.events = min(args.events, 3_000)
        args.seconds = min(args.seconds, 4.0)
        args.warmup = min(args.warmup, 1.0)
    url = args.database_url
    rng = random.Random(args.seed)
    logdir = Path(tempfile.mkdtemp(prefix="creatorpay-bench-webhooks-"))
    stack = Stack()
    print(f"bench/webhooks: {args.events} events; gunicorn {args.gunicorn_workers} workers x "
          f"{args.gunicorn_threads} threads; load {args.clients} processes x "
          f"{args.connections} connections; {args.celery_workers} Celery worker processes; "
          f"{os.cpu_count()} cores; logs in {logdir}", flush=True)
    try:
        create_db(url)
        from payments.migrate import upgrade

        upgrade(sa_url(url))
        purge_queues(args.redis_url)
        sandbox_port, web_port = free_port(), free_port()
        env = dict(os.environ)
        env.update({
            "CREATORPAY_DATABASE_URL": sa_url(url),
            "CREATORPAY_BROKER_URL": args.redis_url,
            "CREATORPAY_STRIPE_API_BASE": f"http://127.0.0.1:{sandbox_port}",
            "CREATORPAY_STRIPE_SECRET_KEY": API_KEY,
            "CREATORPAY_STRIPE_WEBHOOK_SECRET": SECRET,
            "CREATORPAY_VAR_DIR": str(logdir),
            "PYTHONUNBUFFERED": "1",
        })
        stack.start("sandbox", [sys.executable, "-m", "payments.sandbox", "--port",
                                str(sandbox_port), "--quiet"], env, logdir / "sandbox.log")
        wait_http(f"http://127.0.0.1:{sandbox_port}/healthz")
        # Only our load generator delivers: no sandbox webhook endpoint.
        with urllib.request.urlopen(  # noqa: S310 - loopback
                f"http://127.0.0.1:{sandbox_port}/_sandbox/webhooks/endpoints") as resp:
            assert json.load(resp)["data"] == [], "the sandbox must have no webhook endpoint"

        print("seeding ...", flush=True)
        events, expected = seed(url, sandbox_port, args.events, rng)
        analyze(url)

        from payments.devserver import gunicorn_argv

        argv = gunicorn_argv(web_port, args.gunicorn_workers, args.gunicorn_threads)
        # The app logs as deployed: its own JSON request line (payments.observe), no access log.
        stack.start("web", argv, env, logdir / "gunicorn.log")
        wait_http(f"http://127.0.0.1:{web_port}/healthz")

        meter = CpuMeter(stack, url)
        a = b = None
        if "a" in args.phases:  # (a) trivial endpoint
            run_load(LoadSpec(web_port, "GET", "/healthz", args.warmup,
                              connections=args.connections), args.clients)
            a = run_load(LoadSpec(web_port, "GET", "/healthz", args.seconds,
                                  connections=args.connections), args.clients, meter)
            print(f"  (a) GET /healthz: {a.count} requests in {a.last - a.first:.2f} s, "
                  f"{a.rate:.0f}/s, p50 {a.pct(0.5):.1f} ms, p99 {a.pct(0.99):.1f} ms, "
                  f"{a.errors} errors", flush=True)
        if "b" in args.phases:  # (b) ingestion, workers stopped; warm up, then measure
            warm = max(200, len(events) // 20)
            run_load(LoadSpec(web_port, "POST", "/webhooks/stripe", args.warmup,
                              bodies=events[:warm], connections=args.connections),
                     args.clients)
            b = run_load(LoadSpec(web_port, "POST", "/webhooks/stripe", args.seconds,
                                  bodies=events[warm:], connections=args.connections),
                         args.clients, meter)
            _, _, stored, _ = inbox_counts(url)
            print(f"  (b) POST /webhooks/stripe: {b.count} events in {b.last - b.first:.2f} s,"
                  f" {b.rate:.0f}/s, p50 {b.pct(0.5):.1f} ms, p99 {b.pct(0.99):.1f} ms, "
                  f"{b.errors} errors; {stored} rows stored", flush=True)
        c_rate = None
        if "c" in args.phases:  # (c) end to end: the same events, empty inbox and queues
            reset_inbox(url)
            purge_queues(args.redis_url)
            c_rate, c_ingest, c_secs = end_to_end(args, url, env, stack, logdir, web_port,
                                                  events, expected, meter)

        print()
        if a is not None:
            print(f"(a) trivial GET /healthz           {a.rate:8.0f} requests/s")
        if b is not None:
            pct = f"  ({100.0 * b.rate / a.rate:.1f} % of (a))" if a else ""
            print(f"(b) webhook ingestion              {b.rate:8.0f} events/s{pct}")
        if c_rate is not None:
            rel = [f"{100.0 * c_rate / x.rate:.1f} % of ({k})" for k, x in (("a", a), ("b", b))
                   if x is not None]
            print(f"(c) end to end, {len(events)} tip events {c_rate:8.0f} events/s  ("
                  + ", ".join([*rel, f"delivery alone ran at {c_ingest:.0f}/s",
                               f"{c_secs:.1f} s"]) + ")")
        if a is not None and b is not None:
            ratio = 100.0 * b.rate / a.rate
            print(f"target ingest_vs_trivial: {ratio:.1f} % (goal >= {INGEST_GOAL:.0f} %) "
                  f"{'PASS' if ratio >= INGEST_GOAL else 'FAIL'}")
        if c_rate is not None:
            print(f"target end_to_end: {c_rate:.0f} events/s (goal >= {E2E_GOAL:.0f} events/s)"
                  f" {'PASS' if c_rate >= E2E_GOAL else 'FAIL'}", flush=True)
        return 0
    finally:
        stack.stop_all()
        purge_queues(args.redis_url)
        if not args.keep:
            drop_db(url)
            shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
