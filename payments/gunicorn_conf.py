"""gunicorn settings (``gunicorn -c python:payments.gunicorn_conf payments.wsgi:app``).

Logs: the master's and the workers' lines in our format (``CREATORPAY_LOG_FORMAT``);
gunicorn's access log is off, since ``payments.observe`` writes one line per request with
its request id. Metrics: in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) a worker that
exits has its live files marked dead.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from payments.config import ConfigError, load_config
from payments.logs import gunicorn_logconfig

try:
    logconfig_dict = gunicorn_logconfig(load_config().log_format)
except ConfigError:  # payments.wsgi reports it in one line and exits
    logconfig_dict = gunicorn_logconfig("json")
accesslog = None


class RequestLineLogger(Logger):
    """gunicorn's logger with no access log at all: ``payments.observe`` writes the request
    line. (With ``logconfig_dict`` set, gunicorn builds every request's access-log atoms even
    when ``accesslog`` is None: a tenth of a webhook delivery's CPU, measured with yappi.)"""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


logger_class = RequestLineLogger


def child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
