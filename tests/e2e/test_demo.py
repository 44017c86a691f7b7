"""``make demo`` against the stack as ``make run`` starts it (``creatorpay dev``).

On the embedded default (SQLite database and broker) in the SQLite leg; on PostgreSQL and
Redis in the PostgreSQL leg (a throw-away database, the leg's broker). The demo runs twice
against the same stack: each run makes its own accounts and checks its own figures.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import TEST_BROKER_URL, TEST_DB_URL, _create_pg_database, _drop_pg_database
from tests.e2e.test_stack import children_of, free_port
from tests.fixtures.workers import QUEUES, ROOT, wait_for

STEPS = (
    "Two creators sign up and connect their Stripe accounts",
    "Fans tip in two currencies",
    "Fans subscribe to membership tiers",
    "A brand funds a sponsored-post deal into escrow",
    "The creator delivers; the brand approves the reel",
    "A tip is partly refunded",
    "A fan's bank disputes a tip, and the dispute is lost",
    "Three days pass: the story is approved automatically",
    "A month passes: subscriptions renew, one renewal fails",
    "The fan fixes the card: Stripe's retry recovers the renewal",
    "The hold period ends; the doctor is paid out",
)


def purge(broker_url: str) -> None:
    """Messages other tests left on the leg's shared broker are not this stack's."""
    from kombu import Connection

    with Connection(broker_url) as conn:
        for queue in QUEUES.split(","):
            with contextlib.suppress(Exception):  # a queue never declared is empty
                conn.default_channel.queue_purge(queue)


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATORPAY_")}
    env.update(CREATORPAY_PORT=str(free_port()), CREATORPAY_SANDBOX_PORT=str(free_port()),
               CREATORPAY_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(ROOT),
               # The sign-up limit's counters would otherwise live in the leg's Redis and
               # outlast this stack: each stack counts its own, as a fresh `make run` does.
               CREATORPAY_RATE_LIMIT_STORAGE="memory://")
    if not TEST_DB_URL:
        yield env
        return
    url, name = _create_pg_database(TEST_DB_URL)
    env["CREATORPAY_DATABASE_URL"] = url
    if TEST_BROKER_URL:
        env["CREATORPAY_BROKER_URL"] = TEST_BROKER_URL
        purge(TEST_BROKER_URL)
    try:
        yield env
    finally:
        _drop_pg_database(TEST_DB_URL, name)


def run_demo(env: dict[str, str], cwd: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "payments.cli", "demo"], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=240)
    return out.returncode, out.stdout + out.stderr, time.monotonic() - started


@pytest.mark.slow
def test_make_demo_walks_the_mission_and_every_figure_reconciles(
        tmp_path: Path, stack_env: dict[str, str]) -> None:
    env = stack_env
    # The stack's log goes to a file: a pipe nobody reads while the demo runs fills up, and
    # then every process of the stack blocks on its next log line.
    log_path = tmp_path / "stack.log"
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "payments.cli", "dev"], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    api = f"http://127.0.0.1:{env['CREATORPAY_PORT']}"

    def ready() -> bool:
        try:
            return requests.get(api + "/readyz", timeout=10).status_code == 200
        except requests.RequestException:  # not listening yet, or busy starting
            return False

    outputs: list[str] = []
    codes: list[int] = []
    kids: set[int] = set()
    try:
        wait_for(ready, timeout=90, interval=0.3)
        assert (tmp_path / "var" / "admin_key").read_text().startswith("ak_")
        for _ in range(2):
            code, output, took = run_demo(env, tmp_path)
            outputs.append(output)
            codes.append(code)
            print(f"demo run: exit {code} in {took:.1f}s")
            if code:
                break
        kids = children_of(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        log.close()
    stack_output = log_path.read_text()
    # On a failure, the stack's own log says what the server side was doing.
    assert codes == [0, 0], outputs[-1] + "\n--- the stack's log ---\n" + stack_output[-6000:]
    assert proc.returncode == 0, stack_output[-3000:]

    first, second = outputs
    runs = [re.search(r"creatorpay demo \(run (\w+)\)", o) for o in outputs]
    assert all(runs) and runs[0].group(1) != runs[1].group(1)  # type: ignore[union-attr]
    for output in outputs:
        for step in STEPS:
            assert f"✓ {step}" in output, (step, output)
        assert "✗" not in output
        for title in ("balance", "monthly statements", "trial balance",
                      "reconciliation with Stripe", "checks"):
            assert title in output, title
        assert "ledger verify: OK" in output
        assert re.search(r"All \d+ checks passed: every figure reconciles", output), output
    # Both runs' creators are in the books, each with its own statements.
    assert f"dr_lim_{runs[0].group(1)}" in first and f"dr_lim_{runs[1].group(1)}" in second  # type: ignore[union-attr]
    time.sleep(0.5)
    assert [pid for pid in kids if Path(f"/proc/{pid}").exists()] == []


def test_demo_without_a_stack_says_to_start_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATORPAY_")}
    env.update(CREATORPAY_PORT=str(free_port()), CREATORPAY_SANDBOX_PORT=str(free_port()),
               CREATORPAY_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(ROOT))
    code, output, _ = run_demo(env, tmp_path)
    assert code == 2, output
    assert "the stack is not up" in output and "make run" in output
