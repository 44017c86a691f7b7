"""The whole stack as ``make run`` starts it (``creatorpay dev``), driven over HTTP.

Sandbox, gunicorn, a Celery worker and beat as real processes on the embedded default
(SQLite database, SQLite broker), then Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.workers import ROOT, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True)
    kids: dict[int, list[int]] = {}
    for line in out.stdout.splitlines():
        child, parent = (int(x) for x in line.split())
        kids.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@pytest.mark.slow
def test_make_run_stack_takes_a_tip_to_available_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATORPAY_")}
    env.update(CREATORPAY_PORT=str(port), CREATORPAY_SANDBOX_PORT=str(sandbox_port),
               CREATORPAY_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "payments.cli", "dev"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    api = f"http://127.0.0.1:{port}"
    sandbox = f"http://127.0.0.1:{sandbox_port}"

    def get(path: str, key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.get(api + path, headers=headers, timeout=10)

    def ready() -> bool:
        try:
            return bool(get("/readyz").status_code == 200)
        except requests.ConnectionError:
            return False

    try:
        wait_for(ready, timeout=60, interval=0.3)
        secret = (tmp_path / "var" / "webhook_secret").read_text().strip()
        assert secret.startswith("whsec_")
        r = requests.post(api + "/v1/creators", timeout=10, json={
            "handle": "dr_ann", "display_name": "Dr Ann", "email": "ann@example.com",
            "kind": "kol", "profession": "doctor", "country": "US", "default_currency": "usd"})
        key = r.json()["api_key"]
        r = requests.post(api + "/v1/tips", timeout=30, json={
            "creator": "dr_ann", "amount": 1500, "currency": "usd",
            "email": "fan@example.com", "payment_method": "pm_card_visa"})
        assert r.status_code == 201, r.text

        def pending() -> int:
            return int(get("/v1/creators/me/balance", key).json()["balances"][0]["pending"])

        # 1500 gross - Stripe's 2.9% + 30 (74) - platform's 10% (150)
        assert wait_for(lambda: get("/v1/creators/me/balance", key).json()["balances"]
                        and pending() == 1276, timeout=60)
        # Eight sandbox days later the hold is over: the business clock is the sandbox's.
        requests.post(sandbox + "/_sandbox/clock/advance", json={"seconds": 8 * 86_400},
                      timeout=10)
        out = subprocess.run(
            [sys.executable, "-m", "payments.cli", "ledger", "mature"], cwd=tmp_path,
            env={**env, "CREATORPAY_STRIPE_API_BASE": sandbox}, capture_output=True, text=True,
            timeout=60)
        assert out.returncode == 0, out.stderr
        balance = get("/v1/creators/me/balance", key).json()["balances"][0]
        assert balance["pending"] == 0 and balance["available"] == 1276
        # GET /metrics from gunicorn: the requests of every web worker process (the
        # multiprocess directory under var/), the ledger and the inbox from the database.
        from prometheus_client.parser import text_string_to_metric_families

        scraped = get("/metrics")
        assert scraped.status_code == 200 and scraped.headers["X-Request-Id"].startswith("req_")
        samples = {(x.name, tuple(sorted(x.labels.items()))): x.value
                   for f in text_string_to_metric_families(scraped.text) for x in f.samples}
        tips = (("method", "POST"), ("route", "/v1/tips"), ("status", "201"))
        assert samples[("creatorpay_http_requests_total", tips)] == 1
        assert samples[("creatorpay_ledger_journals_total", (("kind", "tip"),))] >= 1
        assert samples[("creatorpay_webhook_inbox_backlog", (("status", "received"),))] == 0
        assert list((tmp_path / "var" / "prometheus").glob("*.db"))
        kids = children_of(proc.pid)
        assert len(kids) >= 4  # sandbox, gunicorn (+ its workers), worker (+ pool), beat
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    for name in ("sandbox", "web", "worker", "beat"):
        assert f"creatorpay: stopped {name}" in output
    time.sleep(0.5)
    alive = [pid for pid in kids if Path(f"/proc/{pid}").exists()]
    assert alive == [], output[-2000:]
