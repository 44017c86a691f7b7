"""The Celery application and its thin tasks.

Tasks take ids, open one ``session_scope()``, call one service function and let it commit.
The engine is created lazily per process (after the prefork worker forks).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from payments import clock, domains
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


db.configure(load_config().database_url)
clock.follow(load_config().clock_url)


# Every domain's task module (payments.domains), so the worker knows their names.
domains.register_tasks()
