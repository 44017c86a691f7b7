"""Celery settings, read by ``tasks.app`` (``app.config_from_object("celeryconfig")``).

The broker comes from the one config loader (``CREATORPAY_BROKER_URL``); the rest is fixed
policy for tasks that move money: late acks, one message in flight per process, JSON only.
"""

from __future__ import annotations

from kombu.entity import Queue

from payments import domains
from payments.config import load_config

_config = load_config()

broker_url = _config.broker_url
# No result backend: tasks record their outcome in the database (inbox rows, payouts).
result_backend = None
task_ignore_result = True

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]

# A task that dies mid-way (worker killed) is redelivered, not lost; our tasks are idempotent.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1


def transport_options(url: str) -> dict[str, object]:
    """Options for the broker at ``url``.

    On Redis the visibility timeout must be longer than the longest task, or Redis redelivers
    a task that is still running. kombu's SQLAlchemy transport hands its options to
    ``create_engine``, so it gets none.
    """
    if url.startswith(("redis", "rediss")):
        return {"visibility_timeout": 3600}
    return {}


broker_transport_options = transport_options(broker_url)
broker_connection_retry_on_startup = True
task_time_limit = 600
task_soft_time_limit = 540
worker_hijack_root_logger = False
enable_utc = True
timezone = "UTC"

task_default_queue = "default"
task_queues = (
    Queue("default"),
    Queue("webhooks"),
    Queue("payouts"),
    Queue("statements"),
)
task_routes = {
    "webhooks.*": {"queue": "webhooks"},
    "payouts.*": {"queue": "payouts"},
    "statements.*": {"queue": "statements"},
}

# What each domain runs on a schedule (``Domain.beat`` in its package).
beat_schedule = domains.beat_schedule()
