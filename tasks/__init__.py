"""The Celery application and its thin tasks.

Tasks take ids, open one ``session_scope()``, call one service function and let it commit.
The engine is created lazily per process (after the prefork worker forks).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    worker_process_init,
)

from payments import clock, domains, logs, metrics
from payments.config import Config, load_config
from payments.db import db

app = Celery("creatorpay")
app.config_from_object("celeryconfig")


_config: Config | None = None


def configure(config: Config) -> Celery:
    """Run tasks in this process with ``config`` (tests); otherwise it comes from the env."""
    import celeryconfig

    global _config
    _config = config
    clock.follow(config.clock_url)
    app.conf.broker_url = config.broker_url
    app.conf.broker_transport_options = celeryconfig.transport_options(config.broker_url)
    db.configure(config.database_url)
    return app


def current_config() -> Config:
    """The configuration tasks run with: set by ``configure``, else from the environment."""
    return _config if _config is not None else load_config()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # The parent may have opened a pool before forking; never share it across processes.
    db.dispose()
    db.configure(current_config().database_url, pre_ping=False)


@setup_logging.connect
def _logging(**_: Any) -> None:
    # Our one setup (JSON or text, context fields, redaction) instead of Celery's own.
    logs.configure(current_config())


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    logs.bind(task_id=task_id, task=getattr(task, "name", None))


@task_postrun.connect
def _task_ended(**_: Any) -> None:
    logs.unbind("task_id", "task", "event_id")


@task_failure.connect
def _task_failed(sender: Any = None, **_: Any) -> None:
    metrics.task_failed(getattr(sender, "name", None) or "unknown")


@task_retry.connect
def _task_retried(sender: Any = None, **_: Any) -> None:
    metrics.task_retried(getattr(sender, "name", None) or "unknown")


db.configure(load_config().database_url)
clock.follow(load_config().clock_url)


# Every domain's task module (payments.domains), so the worker knows their names.
domains.register_tasks()
