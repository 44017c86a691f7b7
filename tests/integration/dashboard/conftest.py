"""A served app on a private sandbox (whose clock the app follows) and a real worker: the
dashboard's figures come from real tips and a real funded deal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from payments.config import Config
from tests.fixtures.live import LiveApp
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.workers import QUEUES, purge_queues


@pytest.fixture
def dashboard_stack(committed_db: Config, private_sandbox: SandboxHandle, celery_app: Any,
                    base_config: Config) -> Iterator[LiveApp]:
    from celery.contrib.testing.worker import start_worker

    import tasks
    from tests.fixtures.services import sandbox_config, serve

    config = sandbox_config(committed_db, private_sandbox)
    tasks.configure(config)
    purge_queues(celery_app)
    try:
        with serve(config, private_sandbox) as served, start_worker(
                celery_app, pool="threads", concurrency=2, perform_ping_check=False,
                queues=QUEUES.split(","), shutdown_timeout=30, loglevel="WARNING"):
            yield LiveApp(served.url, config, served.app, private_sandbox,
                          served.endpoint_id or "")
    finally:
        tasks.configure(base_config)
