"""Enqueue Celery tasks by name, from code that must not import the tasks.

The tasks live in ``tasks/`` (the top layer: they import the domains and the inbox). Views,
the inbox endpoint and the CLI ask for work with an :data:`Enqueue` function handed to them
(``create_app(enqueue=...)``; :func:`celery_enqueue` by default), so only a task's name
crosses the line. Routing to queues stays in ``celeryconfig.task_routes``, by name.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Enqueue(Protocol):
    def __call__(self, name: str, *args: Any, retry: bool = True) -> None: ...


_lock = threading.Lock()
_producers: dict[str, Any] = {}


def _producer(broker_url: str) -> Any:
    found = _producers.get(broker_url)
    if found is None:
        with _lock:
            found = _producers.get(broker_url)
            if found is None:
                from celery import Celery

                import celeryconfig

                # A producer only: the same settings as the workers', no task code.
                found = Celery("creatorpay", set_as_current=False)
                found.config_from_object(celeryconfig)
                found.conf.broker_url = broker_url
                found.conf.broker_transport_options = celeryconfig.transport_options(broker_url)
                _producers[broker_url] = found
    return found


def celery_enqueue(broker_url: str) -> Enqueue:
    """Send tasks by name to the broker at ``broker_url``.

    ``retry=False`` for callers that must not wait on a broker that is down (the inbox
    notifier keeps its wish and tries again).
    """

    def enqueue(name: str, *args: Any, retry: bool = True) -> None:
        _producer(broker_url).send_task(name, args=list(args), retry=retry)

    return enqueue
