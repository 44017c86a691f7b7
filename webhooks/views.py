"""Admin endpoints over the inbox: list events by status, replay one."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from payments.auth import require
from payments.db import request_session
from payments.fields import ListQuerySchema, StrictSchema
from payments.web import EXTENSION, enqueue
from webhooks import inbox
from webhooks.endpoint import FastIngest
from webhooks.endpoint import blp as stripe_blp
from webhooks.models import STATUSES, WebhookEvent
from webhooks.notify import notifier

blp = Blueprint("webhook_admin", __name__, url_prefix="/v1/admin",
                description="Operators: the webhook inbox")


class EventQuerySchema(ListQuerySchema):
    status = fields.String(validate=validate.OneOf(STATUSES))


class InboxEventSchema(StrictSchema):
    id = fields.String(attribute="stripe_id")
    object = fields.Constant("webhook_event")
    type = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    error = fields.String(attribute="last_error", allow_none=True)
    via = fields.String()
    created = fields.Integer(attribute="stripe_created")
    received = fields.Integer(attribute="received_at")
    processed = fields.Integer(attribute="processed_at", allow_none=True)


class InboxPageSchema(StrictSchema):
    data = fields.List(fields.Nested(InboxEventSchema))
    has_more = fields.Boolean()


@blp.route("/webhook-events")
class WebhookEvents(MethodView):
    @require("admin")
    @blp.arguments(EventQuerySchema, location="query")
    @blp.response(200, InboxPageSchema)
    @blp.alt_response(404, description="starting_after: no such event")
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The inbox, newest first, optionally by status (received, processed, failed)."""
        rows, more = inbox.list_events(
            request_session(), query.get("status"), query["limit"], query.get("starting_after")
        )
        return {"data": rows, "has_more": more}


@blp.route("/webhook-events/<string:event_id>/replay")
class ReplayEvent(MethodView):
    @require("admin")
    @blp.response(200, InboxEventSchema)
    @blp.alt_response(404, description="No such event")
    @blp.alt_response(409, description="Already waiting")
    def post(self, event_id: str) -> WebhookEvent:
        """Queue a failed (or processed) event again; handlers are idempotent."""
        session = request_session()
        row = inbox.replay(session, inbox.get_by_stripe_id(session, event_id).id)
        session.commit()
        enqueue("webhooks.process", row.id)
        return row


blueprints = [stripe_blp, blp]


def init_app(app: Flask) -> None:
    """Wake drains with the app's enqueue function; answer deliveries on the fast path."""
    send = app.extensions[EXTENSION]["enqueue"]
    # No publish retries: a down broker must not hold the notifier thread for long.
    notifier.use(lambda: send("webhooks.drain", retry=False))
    app.wsgi_app = FastIngest(app, app.config["MAX_CONTENT_LENGTH"])  # type: ignore[method-assign]
