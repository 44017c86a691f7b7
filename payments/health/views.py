"""Liveness and readiness."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text

from payments.db import request_session

blp = Blueprint("health", __name__, description="Liveness and readiness")


class HealthSchema(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())


@blp.route("/healthz")
class Healthz(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, Any]:
        """The process is up."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readyz(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A dependency is down")
    def get(self) -> Any:
        """Ready when the database answers and the broker accepts a connection."""
        checks: dict[str, str] = {}
        try:
            request_session().execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["database"] = f"error: {type(exc).__name__}"
        checks["broker"] = _check_broker(current_app.config["CREATORPAY"].broker_url)
        ok = all(v == "ok" for v in checks.values())
        return {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.response(200, description="Prometheus text exposition (docs/architecture.md, "
                  "\"Logs and metrics\")")
    @blp.alt_response(401, description="CREATORPAY_METRICS_TOKEN is set and the bearer "
                      "token is missing or wrong")
    def get(self) -> Response:
        """Prometheus metrics: requests, tasks, the webhook inbox, the ledger's postings."""
        from payments.errors import Unauthorized
        from payments.metrics import exposition

        token = current_app.config["CREATORPAY"].metrics_token
        if token is not None:
            sent = request.headers.get("Authorization", "")
            scheme, _, value = sent.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    value.strip().encode(), token.encode()):
                raise Unauthorized("A valid metrics token is required.", code="unauthorized")
        body, content_type = exposition(request_session())
        return Response(body, status=200, content_type=content_type)


def _check_broker(url: str) -> str:
    from kombu.connection import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"
