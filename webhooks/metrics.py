"""The webhook inbox at scrape time (``GET /metrics``): backlog by status, lag, retries.

Both queries read only rows not yet processed (the partial index of waiting rows, and the
``(status, id)`` index for failed ones), never the processed history.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from payments.clock import now_ts
from webhooks.models import FAILED, RECEIVED, WebhookEvent


def collect(session: Session) -> Iterator[Metric]:
    now = now_ts()
    waiting, retrying, oldest = session.execute(
        select(func.count(),
               func.coalesce(func.sum(case((WebhookEvent.next_attempt_at > now, 1), else_=0)), 0),
               func.min(WebhookEvent.stripe_created))
        .where(WebhookEvent.status == RECEIVED)
    ).one()
    failed = session.scalar(
        select(func.count()).select_from(WebhookEvent).where(WebhookEvent.status == FAILED))
    backlog = GaugeMetricFamily(
        "creatorpay_webhook_inbox_backlog",
        "Inbox events not processed, by status: received (waiting for a worker, or for a "
        "retry) and failed (given up, kept with the reason until replayed).",
        labels=["status"])
    backlog.add_metric([RECEIVED], int(waiting or 0))
    backlog.add_metric([FAILED], int(failed or 0))
    yield backlog
    yield GaugeMetricFamily(
        "creatorpay_webhook_inbox_retrying",
        "Received events waiting for a retry after a transient error (part of the backlog).",
        value=int(retrying or 0))
    yield GaugeMetricFamily(
        "creatorpay_webhook_lag_seconds",
        "Age of the oldest event not yet processed (from Stripe's creation time); 0 when "
        "the inbox is drained.",
        value=max(0, now - int(oldest)) if oldest is not None else 0)
