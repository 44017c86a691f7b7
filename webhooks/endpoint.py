"""``POST /webhooks/stripe``: verify, keep what we handle, store once, commit, notify, 200.

Stripe calls this more than any other route, so it has two doors to one ``ingest()``:

* ``FastIngest``, a WSGI layer in front of Flask, answers a well-formed signed JSON POST
  without Flask's per-request work (request context, hooks, response wrappers: measured at
  about a fifth of a delivery's CPU under load).
* The Flask view, documented in the OpenAPI schema, answers everything else: FastIngest hands
  it any request it does not answer 200, body intact, so every error comes from the one
  place that makes errors. A bad signature or body is checked again there (nothing was
  done yet); a failure after verification (the database away) is handed over as the error
  itself, which the view raises: the event is never stored twice for one delivery.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from werkzeug.http import parse_options_header

from payments.errors import InvalidRequest
from payments.gateway import WebhookSignatureError, gateway_for
from payments.observe import ROUTE_KEY
from webhooks.notify import notifier
from webhooks.routes import route_table
from webhooks.writer import writer

if TYPE_CHECKING:
    from flask import Flask

    from payments.config import Config

PATH = "/webhooks/stripe"
# FastIngest -> the Flask view: the error ingest() raised after verifying the delivery.
INGEST_ERROR = "creatorpay.ingest_error"

log = logging.getLogger(__name__)

blp = Blueprint("webhooks", __name__, url_prefix="/webhooks", description="Inbound Stripe events")


class ReceiptSchema(Schema):
    received = fields.Boolean()
    stored = fields.Boolean()


# Two possible answers, serialised once.
_RECEIPTS = {flag: json.dumps({"received": True, "stored": flag}).encode()
             for flag in (True, False)}


def ingest(config: Config, raw: bytes, signature: str | None) -> bool:
    """Verify and parse ``raw``; store it (committed) if we handle its type; wake a drain.

    True when this delivery stored the event, False for a repeat or an event we do not handle
    (its type, or an object no route takes: ``RouteTable.wants``).
    Raises ``WebhookSignatureError`` for a bad signature or body and the database's error
    when it cannot store.
    """
    event = gateway_for(config).parse_event(raw, signature)
    if not route_table().wants(event):
        return False
    # Committed before we answer; concurrent deliveries share the INSERT and the COMMIT.
    new_id = writer.store(event, raw)
    if new_id is not None:
        try:
            notifier.notify()
        except Exception:  # noqa: BLE001 - stored and committed: the sweeper drives it anyway
            log.exception("could not wake a drain for %s", event["id"])
    return new_id is not None


@blp.route("/stripe")
class StripeWebhook(MethodView):
    @blp.response(200, ReceiptSchema)
    @blp.alt_response(400, description="Bad signature or not a Stripe event")
    @blp.alt_response(503, description="Database unavailable; Stripe retries")
    def post(self) -> Response:
        """Receive a Stripe event (signed with the endpoint secret)."""
        failed = request.environ.pop(INGEST_ERROR, None)
        if failed is not None:
            raise failed
        raw = request.get_data(cache=False)
        try:
            stored = ingest(current_app.config["CREATORPAY"], raw,
                            request.headers.get("Stripe-Signature"))
        except WebhookSignatureError as exc:
            raise InvalidRequest(exc.message or "Invalid signature.",
                                 code=exc.code or "invalid_signature") from None
        return Response(_RECEIPTS[stored], status=200, mimetype="application/json")


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FastIngest:
    """WSGI middleware: ``POST /webhooks/stripe`` with a JSON body of a sane length goes
    straight to ``ingest()``; everything else, and every failure, goes to Flask."""

    def __init__(self, app: Flask, max_body: int) -> None:
        self.flask: WSGIApp = app.wsgi_app
        self.config: Config = app.config["CREATORPAY"]
        self.max_body = max_body

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.flask(environ, start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        if (not (length.isascii() and length.isdigit() and len(length) <= 12)
                or not 0 < int(length) <= self.max_body
                or not _is_json(environ.get("CONTENT_TYPE") or "")
                or "HTTP_TRANSFER_ENCODING" in environ):
            return self.flask(environ, start_response)
        raw = environ["wsgi.input"].read(int(length))
        try:
            stored = ingest(self.config, raw, environ.get("HTTP_STRIPE_SIGNATURE"))
        except WebhookSignatureError:  # nothing done yet: the view checks it again
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.flask(environ, start_response)
        except Exception as exc:  # noqa: BLE001 - the view raises it: Flask answers it
            environ["wsgi.input"] = io.BytesIO(raw)
            environ[INGEST_ERROR] = exc
            return self.flask(environ, start_response)
        body = _RECEIPTS[stored]
        environ[ROUTE_KEY] = PATH  # for the request line and metrics (payments.observe)
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]


def _is_json(content_type: str) -> bool:
    # As Flask's ``request.is_json``: application/json or application/*+json.
    mimetype = parse_options_header(content_type)[0].lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))
