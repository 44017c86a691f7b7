"""``POST /webhooks/stripe``: verify, keep what we handle, store once, commit, notify, 200."""

from __future__ import annotations

import json

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from payments.errors import InvalidRequest
from payments.gateway import WebhookSignatureError
from payments.gateways import gateway_for
from webhooks.handlers import HANDLED_TYPES
from webhooks.notify import notifier
from webhooks.writer import writer

blp = Blueprint("webhooks", __name__, url_prefix="/webhooks", description="Inbound Stripe events")


class ReceiptSchema(Schema):
    received = fields.Boolean()
    stored = fields.Boolean()


def _receipt(stored: bool) -> Response:
    # Two possible answers, serialised once: this endpoint is the hot path.
    return Response(_RECEIPTS[stored], status=200, mimetype="application/json")


_RECEIPTS = {flag: json.dumps({"received": True, "stored": flag}).encode()
             for flag in (True, False)}


@blp.route("/stripe")
class StripeWebhook(MethodView):
    @blp.response(200, ReceiptSchema)
    @blp.alt_response(400, description="Bad signature or not a Stripe event")
    @blp.alt_response(503, description="Database unavailable; Stripe retries")
    def post(self) -> Response:
        """Receive a Stripe event (signed with the endpoint secret)."""
        raw = request.get_data(cache=False)
        gateway = gateway_for(current_app.config["CREATORPAY"])
        try:
            event = gateway.parse_event(raw, request.headers.get("Stripe-Signature"))
        except WebhookSignatureError as exc:
            raise InvalidRequest(exc.message or "Invalid signature.",
                                 code=exc.code or "invalid_signature") from None
        if event["type"] not in HANDLED_TYPES:
            return _receipt(False)
        # Committed before we answer; concurrent deliveries share the INSERT and the COMMIT.
        new_id = writer.store(event, raw)
        if new_id is not None:
            notifier.notify()
        return _receipt(new_id is not None)
