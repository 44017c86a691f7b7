"""Prometheus metrics (prometheus_client), served as text at ``GET /metrics``.

Two sources, because the web runs as several gunicorn processes and money is booked in
Celery workers, so a counter kept in one web process would not see a worker book a tip:

* **From the database, at scrape time** (:class:`DatabaseCollector`): what the database
  knows is read when Prometheus asks, by each domain's ``metrics`` module
  (``Domain.metrics``: a module exporting ``collect(session)`` yielding metric families):
  the webhook inbox's backlog and lag (webhooks/metrics.py), the ledger's postings
  (payments/ledger/metrics.py). Every process answers the same numbers.
* **Per process** (the counters below): requests and their latency, task failures and
  retries. With ``PROMETHEUS_MULTIPROC_DIR`` set (``creatorpay dev`` sets it under
  ``var/``) prometheus_client's multiprocess mode keeps them in files there, and any
  process on that host reads the sum of all (gunicorn workers and Celery workers alike);
  without it each process exposes its own.

``CREATORPAY_METRICS_TOKEN`` set: ``/metrics`` wants ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "creatorpay_http_requests", "HTTP requests answered, by method, route and status.",
    ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "creatorpay_http_request_duration_seconds", "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
TASK_FAILURES = Counter(
    "creatorpay_task_failures", "Celery tasks that failed (after their retries), by task.",
    ["task"])
TASK_RETRIES = Counter(
    "creatorpay_task_retries", "Celery task retries asked for, by task.", ["task"])

# The only methods we label by name; anything else a client sends is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class DatabaseCollector(Collector):
    """Every domain's database metrics, read in one session when scraped. A domain whose
    query fails is reported in ``creatorpay_metrics_collect_errors`` instead of failing
    the scrape."""

    def __init__(self, session: Any, modules: Iterable[Any] | None = None) -> None:
        self.session = session
        self.modules = modules

    def collect(self) -> Iterator[Metric]:
        from payments import domains

        modules = self.modules if self.modules is not None else domains.metrics_modules()
        errors = GaugeMetricFamily(
            "creatorpay_metrics_collect_errors",
            "1 for a domain whose metrics could not be read at this scrape.", labels=["module"])
        for module in modules:
            try:
                with self.session.begin_nested():
                    families = list(module.collect(self.session))
            except Exception:  # noqa: BLE001 - the scrape goes on; the error is logged
                log.exception("metrics of %s could not be read", module.__name__)
                errors.add_metric([module.__name__], 1)
                continue
            yield from families
        yield errors


class _Registered(Collector):
    """The process's own registry (the counters above, process and platform metrics)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition(session: Any) -> tuple[bytes, str]:
    """The text exposition of every metric, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Registered())
    registry.register(DatabaseCollector(session))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_registry() -> CollectorRegistry:
    """What a worker host serves (``creatorpay metrics serve``): the per-process metrics."""
    if not multiprocess():
        return REGISTRY
    from prometheus_client import multiprocess as mp

    registry = CollectorRegistry()
    mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def count_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "other"
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


def task_failed(task: str) -> None:
    TASK_FAILURES.labels(task).inc()


def task_retried(task: str) -> None:
    TASK_RETRIES.labels(task).inc()


def reset_multiprocess_dir(path: str) -> None:
    """Empty the multiprocess directory (start of a stack: old processes' files go)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
