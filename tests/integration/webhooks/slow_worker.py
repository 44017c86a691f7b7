"""A Celery app for ``celery -A tests.integration.webhooks.slow_worker worker``: the real
tasks, with every webhook handler slowed by ``CREATORPAY_TEST_HANDLER_DELAY`` seconds and a
marker file written once ``CREATORPAY_TEST_MARK_AFTER`` events have been handled, so a test
can SIGKILL the worker in the middle of a batch, deterministically."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from payments.events import Handler
from payments.tips.events import EVENTS
from tasks import app

DELAY = float(os.environ.get("CREATORPAY_TEST_HANDLER_DELAY", "0.05"))
MARK_AFTER = int(os.environ.get("CREATORPAY_TEST_MARK_AFTER", "10"))
MARKER = Path(os.environ.get("CREATORPAY_TEST_MARKER", "/nonexistent/marker"))
_handled = 0


def _slow(handler: Handler) -> Handler:
    def wrapper(*args: Any) -> None:
        global _handled
        handler(*args)
        _handled += 1
        if _handled == MARK_AFTER:
            MARKER.write_text(str(os.getpid()))
        time.sleep(DELAY)

    return wrapper


_routes = cast(dict[str, Any], EVENTS.routes)
for _type, _route in list(_routes.items()):
    _routes[_type] = replace(_route, handler=_slow(_route.handler))

__all__ = ["app"]
