"""The only module that talks to Stripe (or the offline sandbox, which speaks the same API).

- One :class:`Gateway` wraps one ``stripe.StripeClient``. Parameters are typed with the SDK's
  own ``stripe.params`` TypedDicts, so ``mypy --strict`` checks every call we make.
- Every call that creates or moves something takes *our* idempotency key (derived from our
  row id, see :func:`idempotency_key`); Stripe replays the first answer for a repeated key.
- Answers are plain ``dict[str, Any]`` (``StripeObject.to_dict``): callers never see SDK types.
- SDK errors are mapped by :func:`map_error`: :class:`TransientGatewayError` (network, 409
  lock conflicts, 429, 5xx: retry later with the same key) or :class:`GatewayError`
  (terminal; :class:`CardError` for declines, which the API answers as 402 ``card_declined``).
- :meth:`Gateway.parse_event` verifies ``Stripe-Signature`` against every configured secret
  (rotation) with the SDK's verifier, 300 s tolerance, then parses the JSON body.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import orjson
import stripe

if TYPE_CHECKING:
    from stripe.params import (
        AccountCreateParams,
        AccountLinkCreateParams,
        BalanceTransactionListParams,
        CustomerCreateParams,
        CustomerUpdateParams,
        EventListParams,
        InvoicePaymentListParams,
        InvoicePayParams,
        PaymentIntentCancelParams,
        PaymentIntentCaptureParams,
        PaymentIntentConfirmParams,
        PaymentIntentCreateParams,
        PaymentIntentListParams,
        PaymentMethodAttachParams,
        PayoutCreateParams,
        PriceCreateParams,
        PriceUpdateParams,
        ProductCreateParams,
        ProductUpdateParams,
        RefundCreateParams,
        SubscriptionCancelParams,
        SubscriptionCreateParams,
        SubscriptionUpdateParams,
        TransferCreateParams,
        TransferReversalCreateParams,
    )
    from stripe.params._subscription_update_params import SubscriptionUpdateParamsItem

__all__ = [
    "CardError",
    "Gateway",
    "GatewayError",
    "StripeConfig",
    "TransientGatewayError",
    "WebhookSignatureError",
    "compute_signature",
    "gateway_for",
    "gateway_from_config",
    "idempotency_key",
    "map_error",
    "sign_payload",
    "verify_signature",
]

WEBHOOK_TOLERANCE = 300
CaptureMethod = Literal["automatic", "automatic_async", "manual"]
RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]
ProrationBehavior = Literal["always_invoice", "create_prorations", "none"]
PaymentBehavior = Literal[
    "allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"
]
Interval = Literal["day", "week", "month", "year"]
CancellationReason = Literal["abandoned", "duplicate", "fraudulent", "requested_by_customer"]

# ---------------------------------------------------------------------------- errors


class GatewayError(Exception):
    """A terminal answer from Stripe: retrying the same request will not help."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        decline_code: str | None = None,
        http_status: int | None = None,
        param: str | None = None,
        payment_intent: dict[str, Any] | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.decline_code = decline_code
        self.http_status = http_status
        self.param = param
        self.payment_intent = payment_intent
        self.error_type = error_type
        self.request_id = request_id

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code!r}, decline_code={self.decline_code!r}, "
                f"http_status={self.http_status!r}, message={self.message!r})")


class CardError(GatewayError):
    """The card was declined or needs authentication (HTTP 402 ``card_declined`` upstream)."""


class WebhookSignatureError(GatewayError):
    """A webhook failed verification: missing/garbled header, wrong secret, stale, tampered."""


class TransientGatewayError(Exception):
    """Network trouble, a lock conflict, rate limiting or a Stripe 5xx: retry with the same key."""

    def __init__(self, message: str, *, http_status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code


def _error_body(exc: stripe.StripeError) -> dict[str, Any]:
    body = exc.json_body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return err
    return {}


def map_error(exc: BaseException) -> Exception:
    """Translate an SDK exception into ours; anything else is returned unchanged."""
    if isinstance(exc, GatewayError | TransientGatewayError):
        return exc
    if isinstance(exc, stripe.SignatureVerificationError):
        return WebhookSignatureError(exc.user_message or "invalid signature",
                                     code="invalid_signature")
    if not isinstance(exc, stripe.StripeError):
        if isinstance(exc, Exception):
            return exc
        return RuntimeError(repr(exc))
    err = _error_body(exc)
    status = exc.http_status
    message = str(err.get("message") or exc.user_message or type(exc).__name__)
    code = err.get("code") or exc.code
    if isinstance(exc, stripe.APIConnectionError):
        return TransientGatewayError(message, code="api_connection_error")
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return TransientGatewayError(message, http_status=status, code=code or "rate_limit")
    if status is not None and (status >= 500 or status == 409):
        return TransientGatewayError(message, http_status=status, code=code or "api_error")
    if isinstance(exc, stripe.APIError) and status is None:
        return TransientGatewayError(message, code=code or "api_error")
    pi = err.get("payment_intent")
    kwargs: dict[str, Any] = {
        "code": code,
        "decline_code": err.get("decline_code"),
        "http_status": status,
        "param": err.get("param"),
        "payment_intent": pi if isinstance(pi, dict) else None,
        "error_type": err.get("type"),
        "request_id": exc.request_id,
    }
    if isinstance(exc, stripe.CardError) or status == 402:
        return CardError(message, **kwargs)
    if isinstance(exc, stripe.IdempotencyError):
        kwargs["code"] = code or "idempotency_error"
    elif isinstance(exc, stripe.AuthenticationError):
        kwargs["code"] = code or "authentication_error"
    elif isinstance(exc, stripe.PermissionError):
        kwargs["code"] = code or "permission_error"
    return GatewayError(message, **kwargs)


# ---------------------------------------------------------------------------- signatures


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``b"{timestamp}." + payload`` keyed by ``secret`` (Stripe's ``v1``)."""
    signed = str(int(timestamp)).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload``, exactly as Stripe makes it.

    The sandbox signs its deliveries with it and tests forge events with it; verifying is the
    SDK's (:func:`verify_signature`), so our signer is checked against Stripe's own code.
    ``timestamp`` defaults to the real wall-clock time (never a sandbox clock).
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={ts},v1={compute_signature(payload, secret, ts)}"


def verify_signature(raw_body: bytes, signature_header: str | None, secrets: Sequence[str],
                     tolerance: int = WEBHOOK_TOLERANCE) -> None:
    """Raise :class:`WebhookSignatureError` unless one of ``secrets`` signed ``raw_body``."""
    if not signature_header:
        raise WebhookSignatureError("No Stripe-Signature header.", code="missing_signature")
    usable = [s for s in secrets if s]
    if not usable:
        raise WebhookSignatureError("No webhook secret configured.", code="no_webhook_secret")
    last: stripe.SignatureVerificationError | None = None
    for secret in usable:
        try:
            stripe.WebhookSignature.verify_header(raw_body, signature_header, secret, tolerance)
            return
        except stripe.SignatureVerificationError as exc:
            last = exc
        except UnicodeDecodeError as exc:
            raise WebhookSignatureError("Body is not UTF-8.", code="invalid_payload") from exc
    message = last.user_message if last is not None else None
    raise WebhookSignatureError(message or "Invalid signature.", code="invalid_signature")


def _parse_event_body(raw_body: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(raw_body)  # the endpoint's hot path: several times json's speed
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
        raise WebhookSignatureError("Body is not valid JSON.", code="invalid_payload") from exc
    if (not isinstance(event, dict) or not isinstance(event.get("id"), str)
            or not 0 < len(event["id"]) <= 255
            or "\x00" in event["id"]  # no Stripe id has one; PostgreSQL refuses it (a 500)
            or not isinstance(event.get("type"), str)
            or not isinstance(event.get("data"), dict)
            # What the inbox stores from the envelope: Stripe always sends these types.
            or not _is_int(event.get("created", 0))
            or not isinstance(event.get("livemode", False), bool)):
        raise WebhookSignatureError("Body is not a Stripe event.", code="invalid_payload")
    return event


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def idempotency_key(kind: str, ident: object, *action: object) -> str:
    """Our deterministic key: ``idempotency_key("tip", 123)`` -> ``"tip-123"``.

    Stripe scopes a key to one request (endpoint and parameters), so a second operation on the
    same row needs its own suffix: ``idempotency_key("tip", 123, "refund", 1)``.
    """
    return "-".join(str(p) for p in (kind, ident, *action))


# ---------------------------------------------------------------------------- gateway


class StripeConfig(Protocol):
    """What :func:`gateway_from_config` reads (``payments.config`` provides it)."""

    @property
    def stripe_secret_key(self) -> str: ...

    @property
    def stripe_api_base(self) -> str | None: ...

    @property
    def stripe_webhook_secrets(self) -> Sequence[str]: ...


T = TypeVar("T")


def _to_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict(recursive=True, for_json=True)
    if isinstance(obj, dict):
        return obj
    raise TypeError(f"unexpected Stripe answer: {type(obj).__name__}")


def _opts(idempotency_key: str | None = None,
          stripe_account: str | None = None) -> stripe.RequestOptions:
    opts: stripe.RequestOptions = {}
    if idempotency_key is not None:
        if not idempotency_key or len(idempotency_key) > 255:
            raise ValueError("idempotency_key must be 1..255 characters")
        opts["idempotency_key"] = idempotency_key
    if stripe_account is not None:
        opts["stripe_account"] = stripe_account
    return opts


class Gateway:
    """Typed calls to Stripe (or the sandbox). Thread-safe; share one per process."""

    def __init__(
        self,
        api_key: str,
        api_base: str | None = None,
        webhook_secrets: Sequence[str] = (),
        max_network_retries: int = 2,
        *,
        timeout: float = 30.0,
        webhook_tolerance: int = WEBHOOK_TOLERANCE,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/") if api_base else None
        self.webhook_secrets = [s for s in webhook_secrets if s]
        self.webhook_tolerance = webhook_tolerance
        self.client = stripe.StripeClient(
            api_key,
            base_addresses=(
                {"api": self.api_base, "connect": self.api_base, "files": self.api_base}
                if self.api_base else None),
            max_network_retries=max_network_retries,
            http_client=http_client or stripe.RequestsClient(timeout=timeout),
        )

    # -------------------------------------------------------------- plumbing

    def _call(self, fn: Callable[[], Any]) -> dict[str, Any]:
        try:
            result = fn()
        except stripe.StripeError as exc:
            raise map_error(exc) from exc
        return _to_dict(result)

    # -------------------------------------------------------------- webhooks

    def parse_event(self, raw_body: bytes, signature_header: str | None) -> dict[str, Any]:
        """Verify (any configured secret, 300 s tolerance) and parse a webhook body."""
        verify_signature(raw_body, signature_header, self.webhook_secrets, self.webhook_tolerance)
        return _parse_event_body(raw_body)

    # -------------------------------------------------------------- customers

    def create_customer(self, *, idempotency_key: str, email: str | None = None,
                        name: str | None = None, metadata: Mapping[str, str] | None = None,
                        payment_method: str | None = None) -> dict[str, Any]:
        params: CustomerCreateParams = {"metadata": dict(metadata or {})}
        if email is not None:
            params["email"] = email
        if name is not None:
            params["name"] = name
        if payment_method is not None:
            params["payment_method"] = payment_method
        return self._call(lambda: self.client.v1.customers.create(
            params, _opts(idempotency_key)))

    def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.customers.retrieve(customer_id))

    def update_customer(self, customer_id: str, *, default_payment_method: str | None = None,
                        email: str | None = None, name: str | None = None,
                        metadata: Mapping[str, str] | None = None,
                        idempotency_key: str | None = None) -> dict[str, Any]:
        params: CustomerUpdateParams = {}
        if default_payment_method is not None:
            params["invoice_settings"] = {"default_payment_method": default_payment_method}
        if email is not None:
            params["email"] = email
        if name is not None:
            params["name"] = name
        if metadata is not None:
            params["metadata"] = dict(metadata)
        return self._call(lambda: self.client.v1.customers.update(
            customer_id, params, _opts(idempotency_key)))

    def attach_payment_method(self, payment_method: str, *, customer: str,
                              idempotency_key: str | None = None) -> dict[str, Any]:
        """Attach (a test token such as ``pm_card_visa`` makes a new PaymentMethod)."""
        params: PaymentMethodAttachParams = {"customer": customer}
        return self._call(lambda: self.client.v1.payment_methods.attach(
            payment_method, params, _opts(idempotency_key)))

    def retrieve_payment_method(self, payment_method: str) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.payment_methods.retrieve(payment_method))

    # -------------------------------------------------------------- payment intents

    def create_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
        customer: str | None = None,
        payment_method: str | None = None,
        confirm: bool | None = None,
        capture_method: CaptureMethod | None = None,
        receipt_email: str | None = None,
        description: str | None = None,
        off_session: bool | None = None,
        transfer_group: str | None = None,
        statement_descriptor_suffix: str | None = None,
        expand: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Create (and with ``confirm=True`` pay) a PaymentIntent.

        A decline raises :class:`CardError` whose ``payment_intent`` is the failed intent.
        """
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("amount must be a positive integer in minor units")
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency.lower(),
            "metadata": dict(metadata),
        }
        if customer is not None:
            params["customer"] = customer
        if payment_method is not None:
            # server-side confirmation: no redirect-based methods, so no return_url needed
            params["payment_method"] = payment_method
            params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
        else:
            params["automatic_payment_methods"] = {"enabled": True}
        if confirm is not None:
            params["confirm"] = confirm
        if capture_method is not None:
            params["capture_method"] = capture_method
        if receipt_email is not None:
            params["receipt_email"] = receipt_email
        if description is not None:
            params["description"] = description
        if off_session is not None:
            params["off_session"] = off_session
        if transfer_group is not None:
            params["transfer_group"] = transfer_group
        if statement_descriptor_suffix is not None:
            params["statement_descriptor_suffix"] = statement_descriptor_suffix
        if expand:
            params["expand"] = list(expand)
        return self._call(lambda: self.client.v1.payment_intents.create(
            params, _opts(idempotency_key)))

    def retrieve_payment_intent(self, payment_intent: str, *,
                                expand: Sequence[str] | None = None) -> dict[str, Any]:
        if expand:
            return self._call(lambda: self.client.v1.payment_intents.retrieve(
                payment_intent, {"expand": list(expand)}))
        return self._call(lambda: self.client.v1.payment_intents.retrieve(payment_intent))

    def list_payment_intents(self, *, customer: str | None = None, limit: int = 100,
                             starting_after: str | None = None) -> dict[str, Any]:
        params: PaymentIntentListParams = {"limit": limit}
        if customer is not None:
            params["customer"] = customer
        if starting_after is not None:
            params["starting_after"] = starting_after
        return self._call(lambda: self.client.v1.payment_intents.list(params))

    def confirm_payment_intent(self, payment_intent: str, *, idempotency_key: str,
                               payment_method: str | None = None,
                               off_session: bool | None = None) -> dict[str, Any]:
        params: PaymentIntentConfirmParams = {}
        if payment_method is not None:
            params["payment_method"] = payment_method
        if off_session is not None:
            params["off_session"] = off_session
        return self._call(lambda: self.client.v1.payment_intents.confirm(
            payment_intent, params, _opts(idempotency_key)))

    def capture_payment_intent(self, payment_intent: str, *, idempotency_key: str,
                               amount_to_capture: int | None = None) -> dict[str, Any]:
        params: PaymentIntentCaptureParams = {}
        if amount_to_capture is not None:
            params["amount_to_capture"] = amount_to_capture
        return self._call(lambda: self.client.v1.payment_intents.capture(
            payment_intent, params, _opts(idempotency_key)))

    def cancel_payment_intent(self, payment_intent: str, *, idempotency_key: str,
                              cancellation_reason: CancellationReason | None = None
                              ) -> dict[str, Any]:
        params: PaymentIntentCancelParams = {}
        if cancellation_reason is not None:
            params["cancellation_reason"] = cancellation_reason
        return self._call(lambda: self.client.v1.payment_intents.cancel(
            payment_intent, params, _opts(idempotency_key)))

    # -------------------------------------------------------------- charges, balance

    def retrieve_charge(self, charge: str, *, expand: Sequence[str] | None = None,
                        stripe_account: str | None = None) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.charges.retrieve(
            charge, {"expand": list(expand)} if expand else {}, _opts(None, stripe_account)))

    def retrieve_balance_transaction(self, txn: str, *,
                                     stripe_account: str | None = None) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.balance_transactions.retrieve(
            txn, {}, _opts(None, stripe_account)))

    def list_balance_transactions(
        self,
        *,
        created_gte: int | None = None,
        created_lt: int | None = None,
        limit: int = 100,
        starting_after: str | None = None,
        type: str | None = None,  # noqa: A002 - Stripe's name
        source: str | None = None,
        payout: str | None = None,
        currency: str | None = None,
        stripe_account: str | None = None,
    ) -> dict[str, Any]:
        """One page (newest first): ``{"object": "list", "data": [...], "has_more": ...}``."""
        params: BalanceTransactionListParams = {"limit": limit}
        created: dict[str, int] = {}
        if created_gte is not None:
            created["gte"] = created_gte
        if created_lt is not None:
            created["lt"] = created_lt
        if created:
            params["created"] = {"gte": created["gte"]} if "lt" not in created else (
                {"gte": created["gte"], "lt": created["lt"]} if "gte" in created
                else {"lt": created["lt"]})
        if starting_after is not None:
            params["starting_after"] = starting_after
        if type is not None:
            params["type"] = type
        if source is not None:
            params["source"] = source
        if payout is not None:
            params["payout"] = payout
        if currency is not None:
            params["currency"] = currency
        # A page is read as plain JSON: building StripeObjects for 100 transactions only to
        # turn them back into dicts costs more than the request itself.
        query: dict[str, Any] = {**params, **_opts(None, stripe_account)}
        return self._call(lambda: self.client.raw_request(
            "get", "/v1/balance_transactions", **query).data)

    def iter_balance_transactions(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every matching balance transaction, newest first, page by page."""
        after: str | None = None
        while True:
            page = self.list_balance_transactions(starting_after=after, **filters)
            yield from page["data"]
            if not page["has_more"] or not page["data"]:
                return
            after = page["data"][-1]["id"]

    def retrieve_balance(self, *, stripe_account: str | None = None) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.balance.retrieve(
            {}, _opts(None, stripe_account)))

    # -------------------------------------------------------------- refunds, disputes

    def create_refund(self, *, payment_intent: str, idempotency_key: str,
                      amount: int | None = None, reason: RefundReason | None = None,
                      metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        params: RefundCreateParams = {"payment_intent": payment_intent,
                                      "metadata": dict(metadata or {})}
        if amount is not None:
            params["amount"] = amount
        if reason is not None:
            params["reason"] = reason
        return self._call(lambda: self.client.v1.refunds.create(params, _opts(idempotency_key)))

    def retrieve_refund(self, refund: str) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.refunds.retrieve(refund))

    def retrieve_dispute(self, dispute: str) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.disputes.retrieve(dispute))

    # -------------------------------------------------------------- products, prices

    def create_product(self, *, name: str, idempotency_key: str, description: str | None = None,
                       metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        params: ProductCreateParams = {"name": name, "metadata": dict(metadata or {})}
        if description:
            params["description"] = description
        return self._call(lambda: self.client.v1.products.create(params, _opts(idempotency_key)))

    def update_product(self, product: str, *, name: str | None = None,
                       description: str | None = None, active: bool | None = None,
                       metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        params: ProductUpdateParams = {}
        if name is not None:
            params["name"] = name
        if description is not None:
            params["description"] = description
        if active is not None:
            params["active"] = active
        if metadata is not None:
            params["metadata"] = dict(metadata)
        return self._call(lambda: self.client.v1.products.update(product, params))

    def create_price(self, *, product: str, unit_amount: int, currency: str,
                     idempotency_key: str, interval: Interval | None = None,
                     interval_count: int | None = None, nickname: str | None = None,
                     metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A one-off price, or a recurring one when ``interval`` is given."""
        params: PriceCreateParams = {"product": product, "unit_amount": unit_amount,
                                     "currency": currency.lower(),
                                     "metadata": dict(metadata or {})}
        if interval is not None:
            params["recurring"] = ({"interval": interval, "interval_count": interval_count}
                                   if interval_count else {"interval": interval})
        if nickname is not None:
            params["nickname"] = nickname
        return self._call(lambda: self.client.v1.prices.create(params, _opts(idempotency_key)))

    def update_price(self, price: str, *, active: bool | None = None,
                     metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        params: PriceUpdateParams = {}
        if active is not None:
            params["active"] = active
        if metadata is not None:
            params["metadata"] = dict(metadata)
        return self._call(lambda: self.client.v1.prices.update(price, params))

    # -------------------------------------------------------------- subscriptions

    def create_subscription(
        self,
        *,
        customer: str,
        price: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        trial_period_days: int | None = None,
        default_payment_method: str | None = None,
        payment_behavior: PaymentBehavior | None = None,
        off_session: bool | None = None,
        expand: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Subscribe ``customer`` to one recurring ``price``.

        The payment method must be attached to the customer (see
        :meth:`attach_payment_method`). Expand ``latest_invoice.payments`` to see the first
        invoice's PaymentIntent.
        """
        params: SubscriptionCreateParams = {"customer": customer, "items": [{"price": price}],
                                            "metadata": dict(metadata or {})}
        if trial_period_days:
            params["trial_period_days"] = trial_period_days
        if default_payment_method is not None:
            params["default_payment_method"] = default_payment_method
        if payment_behavior is not None:
            params["payment_behavior"] = payment_behavior
        if off_session is not None:
            params["off_session"] = off_session
        if expand:
            params["expand"] = list(expand)
        return self._call(lambda: self.client.v1.subscriptions.create(
            params, _opts(idempotency_key)))

    def retrieve_subscription(self, subscription: str, *,
                              expand: Sequence[str] | None = None) -> dict[str, Any]:
        if expand:
            return self._call(lambda: self.client.v1.subscriptions.retrieve(
                subscription, {"expand": list(expand)}))
        return self._call(lambda: self.client.v1.subscriptions.retrieve(subscription))

    def update_subscription(
        self,
        subscription: str,
        *,
        idempotency_key: str,
        cancel_at_period_end: bool | None = None,
        price: str | None = None,
        item_id: str | None = None,
        proration_behavior: ProrationBehavior | None = None,
        default_payment_method: str | None = None,
        metadata: Mapping[str, str] | None = None,
        expand: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Cancel at period end (or undo it), change the price (prorated), or the card.

        Changing ``price`` needs the subscription item's id; when ``item_id`` is not given
        the subscription's single item is looked up first.
        """
        params: SubscriptionUpdateParams = {}
        if cancel_at_period_end is not None:
            params["cancel_at_period_end"] = cancel_at_period_end
        if price is not None:
            if item_id is None:
                current = self.retrieve_subscription(subscription)
                items = current["items"]["data"]
                if len(items) != 1:
                    raise ValueError("subscription has several items: pass item_id")
                item_id = str(items[0]["id"])
            item: SubscriptionUpdateParamsItem = {"id": item_id, "price": price}
            params["items"] = [item]
            params["proration_behavior"] = proration_behavior or "create_prorations"
        elif proration_behavior is not None:
            params["proration_behavior"] = proration_behavior
        if default_payment_method is not None:
            params["default_payment_method"] = default_payment_method
        if metadata is not None:
            params["metadata"] = dict(metadata)
        if expand:
            params["expand"] = list(expand)
        return self._call(lambda: self.client.v1.subscriptions.update(
            subscription, params, _opts(idempotency_key)))

    def cancel_subscription(self, subscription: str, *,
                            idempotency_key: str | None = None) -> dict[str, Any]:
        """Cancel now (use ``update_subscription(cancel_at_period_end=True)`` for later)."""
        params: SubscriptionCancelParams = {}
        return self._call(lambda: self.client.v1.subscriptions.cancel(
            subscription, params, _opts(idempotency_key)))

    def retrieve_invoice(self, invoice: str, *,
                         expand: Sequence[str] | None = None) -> dict[str, Any]:
        if expand:
            return self._call(lambda: self.client.v1.invoices.retrieve(
                invoice, {"expand": list(expand)}))
        return self._call(lambda: self.client.v1.invoices.retrieve(invoice))

    def list_invoice_payments(self, invoice: str, *, limit: int = 10,
                              expand: Sequence[str] | None = None) -> dict[str, Any]:
        """The invoice's payments; each has ``payment.payment_intent``."""
        params: InvoicePaymentListParams = {"invoice": invoice, "limit": limit}
        if expand:
            params["expand"] = list(expand)
        return self._call(lambda: self.client.v1.invoice_payments.list(params))

    def invoice_of_payment_intent(self, payment_intent: str) -> dict[str, Any] | None:
        """The invoice a PaymentIntent pays (through its invoice payment), or None."""
        params: InvoicePaymentListParams = {
            "payment": {"type": "payment_intent", "payment_intent": payment_intent},
            "limit": 1, "expand": ["data.invoice"]}
        found = self._call(lambda: self.client.v1.invoice_payments.list(params))["data"]
        invoice = found[0].get("invoice") if found else None
        return invoice if isinstance(invoice, dict) else None

    def list_paid_invoice_payments(self, *, created_gte: int, created_lt: int,
                                   limit: int = 100, starting_after: str | None = None,
                                   expand: Sequence[str] = ()) -> dict[str, Any]:
        """One page (newest first) of paid invoice payments of every invoice created in
        ``[created_gte, created_lt)``, as plain JSON (the webhook worker reads the paying
        charges of a batch's invoices this way, a page per hundred instead of a call each)."""
        params: InvoicePaymentListParams = {
            "limit": limit, "status": "paid",
            "created": {"gte": created_gte, "lt": created_lt}}
        if starting_after is not None:
            params["starting_after"] = starting_after
        if expand:
            params["expand"] = list(expand)
        query: dict[str, Any] = {**params}
        return self._call(lambda: self.client.raw_request(
            "get", "/v1/invoice_payments", **query).data)

    def pay_invoice(self, invoice: str, *, idempotency_key: str,
                    payment_method: str | None = None) -> dict[str, Any]:
        params: InvoicePayParams = {}
        if payment_method is not None:
            params["payment_method"] = payment_method
        return self._call(lambda: self.client.v1.invoices.pay(
            invoice, params, _opts(idempotency_key)))

    # -------------------------------------------------------------- connect

    def create_account(self, *, idempotency_key: str, country: str, email: str | None = None,
                       metadata: Mapping[str, str] | None = None,
                       business_type: Literal["individual", "company"] | None = None
                       ) -> dict[str, Any]:
        """An Express connected account that can receive transfers."""
        params: AccountCreateParams = {
            "type": "express",
            "country": country.upper(),
            "capabilities": {"transfers": {"requested": True}},
            "metadata": dict(metadata or {}),
        }
        if email is not None:
            params["email"] = email
        if business_type is not None:
            params["business_type"] = business_type
        return self._call(lambda: self.client.v1.accounts.create(params, _opts(idempotency_key)))

    def retrieve_account(self, account: str) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.accounts.retrieve(account))

    def create_account_link(self, *, account: str, refresh_url: str, return_url: str,
                            link_type: Literal["account_onboarding", "account_update"]
                            = "account_onboarding") -> dict[str, Any]:
        params: AccountLinkCreateParams = {"account": account, "refresh_url": refresh_url,
                                           "return_url": return_url, "type": link_type}
        return self._call(lambda: self.client.v1.account_links.create(params))

    def create_transfer(self, *, amount: int, currency: str, destination: str,
                        idempotency_key: str, metadata: Mapping[str, str] | None = None,
                        transfer_group: str | None = None, source_transaction: str | None = None,
                        description: str | None = None) -> dict[str, Any]:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("amount must be a positive integer in minor units")
        params: TransferCreateParams = {"amount": amount, "currency": currency.lower(),
                                        "destination": destination,
                                        "metadata": dict(metadata or {})}
        if transfer_group is not None:
            params["transfer_group"] = transfer_group
        if source_transaction is not None:
            params["source_transaction"] = source_transaction
        if description is not None:
            params["description"] = description
        return self._call(lambda: self.client.v1.transfers.create(params, _opts(idempotency_key)))

    def retrieve_transfer(self, transfer: str) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.transfers.retrieve(transfer))

    def create_transfer_reversal(self, transfer: str, *, idempotency_key: str,
                                 amount: int | None = None,
                                 metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        params: TransferReversalCreateParams = {"metadata": dict(metadata or {})}
        if amount is not None:
            params["amount"] = amount
        return self._call(lambda: self.client.v1.transfers.reversals.create(
            transfer, params, _opts(idempotency_key)))

    def create_payout(self, *, amount: int, currency: str, stripe_account: str,
                      idempotency_key: str,
                      metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A manual payout from a connected account's balance to its bank."""
        params: PayoutCreateParams = {"amount": amount, "currency": currency.lower(),
                                      "metadata": dict(metadata or {})}
        return self._call(lambda: self.client.v1.payouts.create(
            params, _opts(idempotency_key, stripe_account)))

    def retrieve_payout(self, payout: str, *, stripe_account: str | None = None
                        ) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.payouts.retrieve(
            payout, {}, _opts(None, stripe_account)))

    # -------------------------------------------------------------- events

    def list_events(
        self,
        *,
        starting_after: str | None = None,
        ending_before: str | None = None,
        types: Sequence[str] | None = None,
        created_gte: int | None = None,
        limit: int = 100,
        stripe_account: str | None = None,
    ) -> dict[str, Any]:
        """One page of events, newest first (``ending_before`` walks towards newer ones)."""
        params: EventListParams = {"limit": limit}
        if starting_after is not None:
            params["starting_after"] = starting_after
        if ending_before is not None:
            params["ending_before"] = ending_before
        if types:
            params["types"] = list(types)
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        return self._call(lambda: self.client.v1.events.list(
            params, _opts(None, stripe_account)))

    def retrieve_event(self, event: str, *, stripe_account: str | None = None
                       ) -> dict[str, Any]:
        return self._call(lambda: self.client.v1.events.retrieve(
            event, {}, _opts(None, stripe_account)))


def gateway_from_config(config: StripeConfig) -> Gateway:
    """Build the process's :class:`Gateway` from the app config (duck-typed)."""
    return Gateway(
        api_key=config.stripe_secret_key,
        api_base=config.stripe_api_base,
        webhook_secrets=list(config.stripe_webhook_secrets),
    )


_gateways_lock = threading.Lock()
_gateways: dict[tuple[object, ...], Gateway] = {}


def gateway_for(config: StripeConfig) -> Gateway:
    """One ``Gateway`` per process and configuration (the SDK client is thread-safe)."""
    key = (os.getpid(), config.stripe_secret_key, config.stripe_api_base,
           tuple(config.stripe_webhook_secrets))
    found = _gateways.get(key)
    if found is None:
        with _gateways_lock:
            found = _gateways.get(key)
            if found is None:
                found = _gateways[key] = gateway_from_config(config)
    return found
