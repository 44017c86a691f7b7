"""Request ids, the request log line and request metrics: a WSGI layer around everything.

It sits outside Flask and the webhook fast path (``webhooks.endpoint.FastIngest``), so every
answer is counted and carries ``X-Request-Id``: the client's, when it sent a well-formed
one (1 to 128 of ``A-Z a-z 0-9 . _ : -``), else ``req_`` and 24 random URL-safe characters. Every
log line written while the request runs carries it (``payments.logs``), and one line per
request (``request``, INFO) gives method, route, status and duration; the route is the URL
rule (``/v1/tips/<tip_id>``), never the raw path, so neither logs nor metrics hold ids
from the URL or its query string.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from payments import logs, metrics

HEADER = "X-Request-Id"
ENVIRON_KEY = "creatorpay.request_id"
# A layer that answers without Flask (the webhook fast path) names its route here.
ROUTE_KEY = "creatorpay.route"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,128}")

log = logging.getLogger("payments.request")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def request_id(incoming: str | None) -> str:
    if incoming is not None and _WELL_FORMED.fullmatch(incoming):
        return incoming
    return "req_" + secrets.token_urlsafe(18)  # 24 characters


def _route(environ: dict[str, Any]) -> str:
    # Set by the app's first before_request hook (init_app) or by a layer answering without
    # Flask; every path no rule matched is one label (a 404 makes no series per URL).
    return str(environ.get(ROUTE_KEY) or "unmatched")


class Observed:
    """WSGI middleware: request id in and out, the request line, the request metrics."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ[ENVIRON_KEY] = rid
        status: list[int] = [500]
        started = time.perf_counter()

        def _start(code: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            status[0] = int(code.split(" ", 1)[0])
            headers = [(k, v) for k, v in headers if k.lower() != HEADER.lower()]
            headers.append((HEADER, rid))
            return start_response(code, headers, *rest)

        with logs.context(request_id=rid):
            try:
                body = self.app(environ, _start)
            finally:
                seconds = time.perf_counter() - started
                method = str(environ.get("REQUEST_METHOD") or "")
                route = _route(environ)
                metrics.count_request(method, route, status[0], seconds)
                method = method if method in metrics.METHODS else "other"
                log.info("%s %s %d %.1fms", method, route, status[0], seconds * 1000,
                         extra={"method": method, "route": route, "status": status[0],
                                "duration_ms": round(seconds * 1000, 2)})
        return body


def init_app(app: Any) -> None:
    """Wrap the app's WSGI callable (call it last, so it is the outermost layer), and name
    each request's route before any other hook can refuse it."""
    from flask import request

    def _name_route() -> None:
        if request.url_rule is not None:
            request.environ[ROUTE_KEY] = request.url_rule.rule

    app.before_request_funcs.setdefault(None, []).insert(0, _name_route)
    app.wsgi_app = Observed(app.wsgi_app)
