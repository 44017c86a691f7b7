"""``creatorpay dev``: one supervisor for the whole local stack.

Processes started with ``&`` from make ignore Ctrl-C, so this supervisor starts each child in
its own session, forwards SIGINT/SIGTERM to all of them, and stops them all when one dies.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from payments.config import Config, load_config

QUEUES = "default,webhooks,payouts,statements"


def gunicorn_argv(port: int, workers: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "payments.wsgi:app",
        # Our log format for gunicorn's own lines; the request line (with its request id)
        # comes from payments.observe instead of gunicorn's access log.
        "--config", "python:payments.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", str(threads),
        "--graceful-timeout", "10",
    ]


def webhook_secret(config: Config) -> str:
    """The configured endpoint secret, or one made once and kept under ``var/``."""
    if config.stripe_webhook_secret:
        return config.stripe_webhook_secret
    path = Path(config.var_dir) / "webhook_secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = "whsec_" + secrets.token_hex(24)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def admin_key(config: Config) -> str:
    """An admin key for the local stack, made once and kept in ``var/admin_key``.

    ``creatorpay demo`` reads it from there, so a newcomer never copies a key. A kept key this
    database does not know (the database was replaced, the key revoked) is made afresh.
    """
    from payments.auth import issue_key, principal_for_key
    from payments.db import db, session_scope
    from payments.errors import PaymentsError

    path = Path(config.var_dir) / "admin_key"
    db.configure(config.database_url)
    try:
        with session_scope() as session:
            if path.exists():
                kept = path.read_text().strip()
                try:
                    if principal_for_key(session, kept).role == "admin":
                        return kept
                except PaymentsError:
                    pass
            key = issue_key(session, "admin", None, label="creatorpay dev (var/admin_key)")
    finally:
        db.dispose()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None


def _children(config: Config, sandbox: bool, secret: str) -> list[Child]:
    py = sys.executable
    children = []
    if sandbox:
        children.append(
            Child("sandbox", [
                py, "-m", "payments.sandbox", "--port", str(config.sandbox_port),
                "--webhook-url", f"http://127.0.0.1:{config.port}/webhooks/stripe",
                "--webhook-secret", secret,
            ])
        )
    children.append(Child("web", gunicorn_argv(config.port, workers=2, threads=4)))
    children.append(
        Child("worker", [py, "-m", "celery", "-A", "tasks", "worker", "-Q", QUEUES,
                         "--concurrency", "2", "--loglevel", "INFO"])
    )
    children.append(
        Child("beat", [py, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "INFO",
                       "--schedule", str(Path(config.var_dir) / "celerybeat-schedule")])
    )
    return children


def run_stack(sandbox: bool = True, migrate: bool = True) -> int:
    config = load_config()
    Path(config.var_dir).mkdir(parents=True, exist_ok=True)
    sandbox = sandbox and importlib.util.find_spec("payments.sandbox") is not None
    secret = webhook_secret(config)
    env = dict(os.environ)
    env["CREATORPAY_STRIPE_WEBHOOK_SECRET"] = ",".join(
        config.stripe_webhook_secrets or (secret,)
    )
    if sandbox:
        env["CREATORPAY_STRIPE_API_BASE"] = f"http://127.0.0.1:{config.sandbox_port}"
    # Four processes share one terminal here: text lines read better than JSON objects
    # there (production's default is json; CREATORPAY_LOG_FORMAT=json keeps it).
    env.setdefault("CREATORPAY_LOG_FORMAT", "text")
    from payments import logs

    logs.configure(load_config(env))  # the supervisor's own lines too
    # One multiprocess directory for web and worker processes: GET /metrics shows the
    # requests of every gunicorn worker and the task failures of every Celery worker.
    metrics_dir = env.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                 str((Path(config.var_dir) / "prometheus").resolve()))
    from payments.metrics import reset_multiprocess_dir

    reset_multiprocess_dir(metrics_dir)
    if migrate:
        from payments.migrate import upgrade

        upgrade(config.database_url)
    admin_key_path = Path(config.var_dir) / "admin_key"
    admin_key(config)
    children = _children(config, sandbox, secret)

    print(f"creatorpay: API      http://127.0.0.1:{config.port}  (docs at /docs)", flush=True)
    if sandbox:
        print(f"creatorpay: sandbox  http://127.0.0.1:{config.sandbox_port}", flush=True)
    print(f"creatorpay: webhook secret {secret}", flush=True)
    print(f"creatorpay: database {config.database_url.split('@')[-1]}", flush=True)
    print(f"creatorpay: admin key in {admin_key_path} (`make demo` uses it)", flush=True)

    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for child in children:
        # A new session: the terminal's Ctrl-C reaches only us; we pass it on in order.
        child.proc = subprocess.Popen(child.argv, env=env, start_new_session=True)  # noqa: S603
        print(f"creatorpay: started {child.name} (pid {child.proc.pid})", flush=True)
        if child.name == "sandbox":
            time.sleep(0.5)

    exit_code = 0
    while not stopping:
        for child in children:
            assert child.proc is not None
            code = child.proc.poll()
            if code is not None:
                print(f"creatorpay: {child.name} exited with {code}; stopping", flush=True)
                exit_code = code or 1
                stopping = True
                break
        time.sleep(0.2)
    _terminate(children)
    return exit_code


def _terminate(children: list[Child], grace: float = 15.0) -> None:
    for child in reversed(children):
        if child.proc is not None and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
        print(f"creatorpay: stopped {child.name}", flush=True)
