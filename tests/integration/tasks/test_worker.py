"""A real worker consumes real messages from the broker under test."""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest
from sqlalchemy import select

from payments.config import Config
from payments.db import db
from payments.health.models import WorkerHeartbeat
from tests.fixtures.workers import wait_for


def heartbeat_pid(token: str) -> int | None:
    with db.session() as session:
        return session.scalar(select(WorkerHeartbeat.pid).where(WorkerHeartbeat.token == token))


def test_celery_policy_for_money_tasks(celery_app: Any) -> None:
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    import celeryconfig

    redis_options = celeryconfig.transport_options("redis://127.0.0.1:6379/0")
    assert redis_options["visibility_timeout"] > conf.task_time_limit
    assert {q.name for q in conf.task_queues} >= {"webhooks", "payouts", "statements"}
    assert conf.task_routes["webhooks.*"] == {"queue": "webhooks"}
    assert "webhooks.sweep" in conf.beat_schedule


def test_worker_thread_runs_a_task(celery_worker: Any, celery_app: Any) -> None:
    from tasks.health import ping

    token = secrets.token_hex(8)
    ping.delay(token)
    assert wait_for(lambda: heartbeat_pid(token), timeout=30) == os.getpid()


@pytest.mark.slow
def test_worker_process_runs_a_task(worker_process: Any, committed_db: Config) -> None:
    from tasks.health import ping

    worker = worker_process()
    token = secrets.token_hex(8)
    ping.delay(token)
    pid = wait_for(lambda: heartbeat_pid(token), timeout=60)
    assert pid != os.getpid()
    worker.stop()


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("CREATORPAY_TEST_AMQP_URL"),
    reason="RabbitMQ leg: set CREATORPAY_TEST_AMQP_URL (CI does)",
)
def test_worker_process_over_rabbitmq(worker_process: Any, committed_db: Config, celery_app: Any) -> None:
    from tasks.health import ping

    amqp = os.environ["CREATORPAY_TEST_AMQP_URL"]
    worker = worker_process(committed_db.with_overrides(broker_url=amqp))
    token = secrets.token_hex(8)
    with celery_app.connection_for_write(amqp) as conn:
        ping.apply_async((token,), connection=conn)
    assert wait_for(lambda: heartbeat_pid(token), timeout=60) != os.getpid()
    worker.stop()
