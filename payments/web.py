"""What every domain's views share: the app's config, enqueueing, and calling Stripe.

:func:`call_stripe` is the one way a view calls Stripe: commit what Stripe will hear about,
make the call, record the answer and commit again; and :func:`gateway_error` the one mapping
of a Stripe failure to the API's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy.orm import Session

from payments.config import Config
from payments.errors import InvalidRequest, PaymentFailed, PaymentsError, ServiceUnavailable
from payments.gateway import CardError, Gateway, GatewayError, TransientGatewayError, gateway_for
from payments.queue import Enqueue

T = TypeVar("T")
EXTENSION = "creatorpay"


def app_config() -> Config:
    config: Config = current_app.config["CREATORPAY"]
    return config


def enqueue(name: str, *args: Any) -> None:
    """Send the task ``name``: call it after the commit of every row it will read."""
    send: Enqueue = current_app.extensions[EXTENSION]["enqueue"]
    send(name, *args)


def gateway_error(exc: GatewayError | TransientGatewayError) -> PaymentsError:
    """The API's answer to a Stripe failure."""
    if isinstance(exc, TransientGatewayError):
        return ServiceUnavailable(
            "Stripe is unreachable; retry shortly (with the same Idempotency-Key, where the "
            "request takes one).", code="stripe_unavailable")
    if isinstance(exc, CardError):
        return PaymentFailed(exc.message, code="card_declined",
                             extra={"decline_code": exc.decline_code})
    if exc.http_status == 400:
        return InvalidRequest(exc.message, code=exc.code or "invalid_request", param=exc.param)
    if exc.http_status == 404 and exc.param == "payment_method":
        # Every payment method we send Stripe is one the client named: an unknown one is the
        # client's mistake (400, as for the per-card rule), not Stripe failing us (502).
        return InvalidRequest(exc.message, code=exc.code or "invalid_payment_method",
                              param="payment_method")
    return PaymentsError(f"Stripe refused the request: {exc.message}",
                         code=exc.code or "stripe_error", status_code=502)


def call_stripe(
    session: Session,
    call: Callable[[Gateway], dict[str, Any]],
    *,
    record: Callable[[dict[str, Any]], T] | None = None,
    on_failure: Callable[[GatewayError], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Commit, call Stripe, record its answer, commit; the answer is returned.

    Rows Stripe will hear about are committed before the call, so every event finds them.
    A terminal failure goes to ``on_failure`` (to record a decline; what it returns joins the
    error body), is committed, and answers as :func:`gateway_error` says. A transient one
    answers 503 and records nothing: the client retries with the same Idempotency-Key, and
    our idempotency key makes Stripe replay its first answer.
    """
    session.commit()
    try:
        answer = call(gateway_for(app_config()))
    except TransientGatewayError as exc:
        raise gateway_error(exc) from None
    except GatewayError as exc:
        extra = on_failure(exc) if on_failure is not None else None
        session.commit()
        error = gateway_error(exc)
        error.extra.update(extra or {})
        raise error from None
    if record is not None:
        record(answer)
        session.commit()
    return answer
