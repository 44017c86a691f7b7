"""Errors with an HTTP status and a stable code, and the one JSON error handler.

Every error the API answers has the contract's shape:
``{"error": {"code": "...", "message": "...", "param": "..."}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class PaymentsError(Exception):
    status_code = 400
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status_code: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.param = param
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.param is not None:
            body["param"] = self.param
        body.update(self.extra)
        return {"error": body}


class InvalidRequest(PaymentsError):
    status_code = 400
    code = "invalid_request"


class Unauthorized(PaymentsError):
    status_code = 401
    code = "unauthorized"


class Forbidden(PaymentsError):
    status_code = 403
    code = "forbidden"


class NotFound(PaymentsError):
    status_code = 404
    code = "not_found"


class Conflict(PaymentsError):
    status_code = 409
    code = "conflict"


class InsufficientBalance(Conflict):
    code = "insufficient_balance"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class PaymentFailed(PaymentsError):
    """A card was declined or needs action the server cannot take: 402."""

    status_code = 402
    code = "card_declined"


class RateLimited(PaymentsError):
    """Too many requests, or too many of one kind (tip velocity): 429 with ``Retry-After``."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(PaymentsError):
    status_code = 503
    code = "service_unavailable"


# Codes for the statuses werkzeug raises on its own (routing, envelope).
HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def _first_param(messages: Any, prefix: str = "") -> str | None:
    """The dotted path of the first field marshmallow complained about."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in ("json", "query", "form", "headers", "view_args", "files"):
                return _first_param(value, prefix)
            if key == "_schema":
                return prefix.rstrip(".") or None
            path = f"{prefix}{key}"
            deeper = _first_param(value, path + ".")
            return deeper or path
    return prefix.rstrip(".") or None


def _first_message(messages: Any) -> str:
    if isinstance(messages, dict):
        for value in messages.values():
            return _first_message(value)
    if isinstance(messages, list) and messages:
        return _first_message(messages[0])
    return str(messages) if messages else "Invalid request."


def error_response(status: int, code: str, message: str, param: str | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if param is not None:
        body["param"] = param
    resp = jsonify({"error": body})
    resp.status_code = status
    return resp


def init_app(app: Flask) -> None:
    @app.errorhandler(PaymentsError)
    def _payments_error(exc: PaymentsError) -> Response:
        resp = jsonify(exc.to_dict())
        resp.status_code = exc.status_code
        if isinstance(exc, RateLimited):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        data = getattr(exc, "data", None)
        if status == 422 or (status == 400 and isinstance(data, dict) and "messages" in data):
            messages = data.get("messages") if isinstance(data, dict) else None
            param = _first_param(messages)
            text = _first_message(messages)
            message = f"{param}: {text}" if param else text
            return error_response(400, "invalid_request", message, param)
        if status == 400:
            return error_response(400, "invalid_request", "The request body is not valid JSON.")
        if status == 405:
            resp = error_response(
                405, "method_not_allowed", f"{request.method} is not allowed here."
            )
            allow = dict(exc.get_headers()).get("Allow")
            if allow:
                resp.headers["Allow"] = allow
            return resp
        if status == 404:
            return error_response(404, "not_found", f"No such route: {request.path}")
        if status == 413:
            return error_response(413, "payload_too_large", "The request body exceeds 1 MiB.")
        if status == 415:
            return error_response(
                415, "unsupported_media_type", "The request body must be application/json."
            )
        return error_response(status, HTTP_CODES.get(status, "http_error"), exc.description or "")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        from sqlalchemy.exc import DBAPIError, OperationalError

        if isinstance(exc, OperationalError) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        ):
            log.warning("database unavailable: %s", exc)
            resp = error_response(503, "service_unavailable", "The database is unavailable.")
            resp.headers["Retry-After"] = "1"
            return resp
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side.")
