"""The sandbox core: objects, payments, refunds, disputes, balance, events and the clock.

Everything here runs under one re-entrant lock (``Sandbox.lock``). The HTTP layer
(``server.py``) parses requests and calls :meth:`Sandbox.api`; webhook delivery
(``webhooks.py``) listens to :meth:`Sandbox.add_listener`.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import heapq
import itertools
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from payments.sandbox import currency as cur
from payments.sandbox.model import (
    CARDS,
    CHARGE_AVAILABLE_DELAY,
    DAY,
    DECLINE_MESSAGES,
    DEFAULT_API_VERSION,
    ApiError,
    Card,
    Ctx,
    Job,
    Obj,
    _rand,
    created_filter,
    invalid,
    missing,
    p_bool,
    p_currency,
    p_dict,
    p_int,
    p_list,
    p_metadata,
    p_req,
    p_str,
    template,
)

Handler = Callable[..., Obj]


class SandboxCore:
    """Sandbox state and the payments core. Thread-safe through ``self.lock``."""

    def __init__(self, *, fee_percent: Decimal = cur.PERCENT_FEE, base_url: str = "") -> None:
        self.lock = threading.RLock()
        self.fee_percent = fee_percent
        self.base_url = base_url
        self.subscription_final_status = "canceled"  # or "unpaid" after the last retry fails
        self._listeners: list[Callable[[Obj, bytes], None]] = []
        self._routes: list[tuple[str, list[str], str, frozenset[str] | None]] = []
        self._register_routes()
        self.reset()

    # ---------------------------------------------------------------- state

    def reset(self) -> None:
        with self.lock:
            self.offset = 0
            self._now_override: int | None = None
            self.objects: dict[str, Obj] = {}
            self.order: dict[str, list[str]] = {}
            self.index: dict[str, int] = {}
            # Kinds whose stored order is not also ``created`` order (lists then scan it all).
            self.unsorted: set[str] = set()
            self.owner: dict[str, str | None] = {}
            self.internal: dict[str, Obj] = {}
            self.created_counts: Counter[str] = Counter()
            self.jobs: list[Job] = []
            self._seq = itertools.count()
            self.idempotency: dict[tuple[str | None, str], tuple[str, str, str, int, bytes]] = {}
            self.requests = 0
            self.api_version = DEFAULT_API_VERSION
            self._event_buffer: list[Obj] | None = None

    def add_listener(self, fn: Callable[[Obj, bytes], None]) -> None:
        self._listeners.append(fn)

    def now(self) -> int:
        if self._now_override is not None:
            return self._now_override
        return int(time.time()) + self.offset

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{_rand()}"

    def _store(self, obj: Obj, account: str | None = None) -> Obj:
        kind = obj["object"]
        ids = self.order.setdefault(kind, [])
        if ids and self.objects[ids[-1]].get("created", 0) > obj.get("created", 0):
            self.unsorted.add(kind)
        self.index[obj["id"]] = len(ids)
        ids.append(obj["id"])
        self.objects[obj["id"]] = obj
        self.owner[obj["id"]] = account
        self.created_counts[kind] += 1
        return obj

    def _get(self, kind: str, ident: str | None, *, param: str = "id",
             label: str | None = None, account: str | None | bool = False) -> Obj:
        obj = self.objects.get(ident or "")
        if obj is None or obj["object"] != kind or (
            account is not False and self.owner.get(obj["id"]) != account
        ):
            raise missing(label or kind, ident or "", param)
        return obj

    def _new(self, resource: str, prefix: str | None, **fields: Any) -> Obj:
        obj = template(resource)
        obj.update(fields)
        if prefix is not None:
            obj["id"] = self._id(prefix)
        obj.setdefault("livemode", False)
        if "created" in obj:
            obj["created"] = self.now()
        obj["livemode"] = False
        return obj

    def schedule(self, due: int, name: str, *args: Any) -> None:
        heapq.heappush(self.jobs, Job(due, next(self._seq), name, args))

    def run_due(self, until: int | None = None) -> int:
        """Run the jobs due by ``until`` (default now), in due order, each at its due time."""
        if until is None and (not self.jobs or self.jobs[0].due > self.now()):
            return 0
        ran = 0
        with self.lock:
            while self.jobs:
                base = int(time.time()) + self.offset
                limit = base if until is None else until
                if self.jobs[0].due > limit:
                    break
                job = heapq.heappop(self.jobs)
                prev = self._now_override
                self._now_override = max(job.due, base)
                try:
                    getattr(self, "_job_" + job.name)(*job.args)
                finally:
                    self._now_override = prev
                ran += 1
        return ran

    def advance(self, seconds: int) -> int:
        """Move the clock forward, running everything that falls due on the way."""
        if seconds < 0:
            raise invalid("seconds must be >= 0", "seconds")
        with self.lock:
            target = self.now() + seconds
            ran = self.run_due(until=target)
            self.offset += seconds
            ran += self.run_due()
            return ran

    # ---------------------------------------------------------------- events

    def emit(self, type_: str, obj: Obj, ctx: Ctx | None = None, *,
             previous: Obj | None = None, account: str | None = None) -> Obj:
        data: Obj = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = json.loads(json.dumps(previous))
        event = self._new("event", "evt", type=type_, data=data)
        event["api_version"] = (ctx.api_version if ctx and ctx.api_version else self.api_version)
        event["request"] = {
            "id": ctx.request_id if ctx else None,
            "idempotency_key": ctx.idempotency_key if ctx else None,
        }
        event["pending_webhooks"] = 0
        if account is not None:
            event["account"] = account
        event["pending_webhooks"] = 1 if self._listeners else 0
        self._store(event, account)
        if self._event_buffer is not None:
            self._event_buffer.append(event)
        else:
            self._deliver(event)
        return event

    def _deliver(self, event: Obj) -> None:
        payload = json.dumps(event, indent=2).encode("utf-8")
        for fn in self._listeners:
            fn(event, payload)

    def hold_events(self) -> None:
        """Buffer events (to send a resource's ``*.created`` first); see :meth:`release_events`."""
        if self._event_buffer is None:
            self._event_buffer = []

    def take_events(self) -> list[Obj]:
        """Stop buffering; return the buffered events (deliver them with :meth:`_deliver`)."""
        buffered, self._event_buffer = self._event_buffer or [], None
        return buffered

    # ---------------------------------------------------------------- dispatch

    def _register_routes(self) -> None:
        r = self._route
        r("POST", "/v1/customers", "create_customer",
          {"email", "name", "description", "metadata", "phone", "payment_method",
           "invoice_settings", "address", "preferred_locales"})
        r("GET", "/v1/customers", "list_customers")
        r("GET", "/v1/customers/*", "retrieve_customer")
        r("POST", "/v1/customers/*", "update_customer",
          {"email", "name", "description", "metadata", "phone", "invoice_settings", "address"})
        r("DELETE", "/v1/customers/*", "delete_customer")
        r("GET", "/v1/customers/*/payment_methods", "list_customer_pms")
        r("POST", "/v1/payment_methods", "create_payment_method",
          {"type", "card", "billing_details", "metadata", "customer", "payment_method"})
        r("GET", "/v1/payment_methods", "list_payment_methods")
        r("GET", "/v1/payment_methods/*", "retrieve_payment_method")
        r("POST", "/v1/payment_methods/*/attach", "attach_payment_method", {"customer"})
        r("POST", "/v1/payment_methods/*/detach", "detach_payment_method", set())
        r("POST", "/v1/payment_intents", "create_payment_intent",
          {"amount", "currency", "metadata", "customer", "payment_method", "confirm",
           "capture_method", "receipt_email", "description", "statement_descriptor",
           "statement_descriptor_suffix", "transfer_group", "off_session", "setup_future_usage",
           "payment_method_types", "allowed_payment_method_types", "automatic_payment_methods",
           "return_url",
           "error_on_requires_action", "confirmation_method", "on_behalf_of",
           "payment_method_options", "use_stripe_sdk"})
        r("GET", "/v1/payment_intents", "list_payment_intents")
        r("GET", "/v1/payment_intents/*", "retrieve_payment_intent")
        r("POST", "/v1/payment_intents/*", "update_payment_intent",
          {"metadata", "description", "receipt_email", "payment_method", "amount",
           "transfer_group", "customer"})
        r("POST", "/v1/payment_intents/*/confirm", "confirm_payment_intent",
          {"payment_method", "off_session", "return_url", "error_on_requires_action",
           "receipt_email", "setup_future_usage", "use_stripe_sdk", "capture_method"})
        r("POST", "/v1/payment_intents/*/capture", "capture_payment_intent",
          {"amount_to_capture", "metadata", "final_capture", "statement_descriptor"})
        r("POST", "/v1/payment_intents/*/cancel", "cancel_payment_intent",
          {"cancellation_reason"})
        r("GET", "/v1/charges", "list_charges")
        r("GET", "/v1/charges/*", "retrieve_charge")
        r("POST", "/v1/charges/*", "update_charge", {"metadata", "description"})
        r("GET", "/v1/charges/*/refunds", "list_charge_refunds")
        r("POST", "/v1/refunds", "create_refund",
          {"payment_intent", "charge", "amount", "reason", "metadata", "instructions_email"})
        r("GET", "/v1/refunds", "list_refunds")
        r("GET", "/v1/refunds/*", "retrieve_refund")
        r("POST", "/v1/refunds/*", "update_refund", {"metadata"})
        r("GET", "/v1/disputes", "list_disputes")
        r("GET", "/v1/disputes/*", "retrieve_dispute")
        r("POST", "/v1/disputes/*", "update_dispute", {"metadata", "evidence", "submit"})
        r("POST", "/v1/disputes/*/close", "close_dispute_api", set())
        r("GET", "/v1/balance", "retrieve_balance")
        r("GET", "/v1/balance_transactions", "list_balance_transactions")
        r("GET", "/v1/balance_transactions/*", "retrieve_balance_transaction")
        r("POST", "/v1/products", "create_product",
          {"name", "description", "metadata", "active", "id", "statement_descriptor",
           "unit_label", "type", "tax_code", "url", "images", "default_price_data"})
        r("GET", "/v1/products", "list_products")
        r("GET", "/v1/products/*", "retrieve_product")
        r("POST", "/v1/products/*", "update_product",
          {"name", "description", "metadata", "active", "default_price"})
        r("POST", "/v1/prices", "create_price",
          {"currency", "unit_amount", "product", "product_data", "recurring", "metadata",
           "nickname", "lookup_key", "active", "tax_behavior", "billing_scheme"})
        r("GET", "/v1/prices", "list_prices")
        r("GET", "/v1/prices/*", "retrieve_price")
        r("POST", "/v1/prices/*", "update_price", {"metadata", "active", "nickname"})
        r("POST", "/v1/subscriptions", "create_subscription",
          {"customer", "items", "default_payment_method", "trial_period_days", "trial_end",
           "metadata", "payment_behavior", "proration_behavior", "cancel_at_period_end",
           "collection_method", "description", "off_session", "payment_settings",
           "transfer_data", "application_fee_percent"})
        r("GET", "/v1/subscriptions", "list_subscriptions")
        r("GET", "/v1/subscriptions/*", "retrieve_subscription")
        r("POST", "/v1/subscriptions/*", "update_subscription",
          {"cancel_at_period_end", "items", "proration_behavior", "proration_date",
           "default_payment_method", "metadata", "payment_behavior", "trial_end",
           "description", "off_session", "cancellation_details"})
        r("DELETE", "/v1/subscriptions/*", "cancel_subscription",
          {"invoice_now", "prorate", "cancellation_details"})
        r("GET", "/v1/subscription_items/*", "retrieve_subscription_item")
        r("GET", "/v1/invoices", "list_invoices")
        r("GET", "/v1/invoices/*", "retrieve_invoice")
        r("POST", "/v1/invoices/*/pay", "pay_invoice",
          {"payment_method", "off_session", "paid_out_of_band"})
        r("GET", "/v1/invoice_payments", "list_invoice_payments")
        r("GET", "/v1/invoice_payments/*", "retrieve_invoice_payment")
        r("POST", "/v1/accounts", "create_account",
          {"type", "country", "email", "capabilities", "business_type", "metadata",
           "controller", "business_profile", "default_currency", "settings", "tos_acceptance",
           "individual"})
        r("GET", "/v1/accounts", "list_accounts")
        r("GET", "/v1/accounts/*", "retrieve_account")
        r("POST", "/v1/accounts/*", "update_account",
          {"metadata", "email", "business_profile", "settings", "capabilities"})
        r("POST", "/v1/account_links", "create_account_link",
          {"account", "refresh_url", "return_url", "type", "collect", "collection_options"})
        r("POST", "/v1/transfers", "create_transfer",
          {"amount", "currency", "destination", "metadata", "transfer_group", "description",
           "source_transaction", "source_type"})
        r("GET", "/v1/transfers", "list_transfers")
        r("GET", "/v1/transfers/*", "retrieve_transfer")
        r("POST", "/v1/transfers/*", "update_transfer", {"metadata", "description"})
        r("POST", "/v1/transfers/*/reversals", "create_transfer_reversal",
          {"amount", "metadata", "description", "refund_application_fee"})
        r("GET", "/v1/transfers/*/reversals", "list_transfer_reversals")
        r("GET", "/v1/transfers/*/reversals/*", "retrieve_transfer_reversal")
        r("POST", "/v1/payouts", "create_payout",
          {"amount", "currency", "metadata", "description", "method", "destination",
           "statement_descriptor"})
        r("GET", "/v1/payouts", "list_payouts")
        r("GET", "/v1/payouts/*", "retrieve_payout")
        r("GET", "/v1/events", "list_events")
        r("GET", "/v1/events/*", "retrieve_event")

    def _route(self, method: str, pattern: str, fn: str,
               allowed: set[str] | None = None) -> None:
        parts = pattern.strip("/").split("/")
        self._routes.append((method, parts, fn,
                             frozenset(allowed | {"expand"}) if allowed is not None else None))

    def _match(self, method: str, path: str) -> tuple[Handler, list[str], frozenset[str] | None]:
        parts = path.strip("/").split("/")
        found_path = False
        for m, pat, fn, allowed in self._routes:
            if len(pat) != len(parts):
                continue
            args: list[str] = []
            ok = True
            for a, b in zip(pat, parts, strict=True):
                if a == "*":
                    if not b:
                        ok = False
                        break
                    args.append(b)
                elif a != b:
                    ok = False
                    break
            if not ok:
                continue
            found_path = True
            if m == method:
                handler: Handler = getattr(self, fn)
                return handler, args, allowed
        if found_path:
            raise ApiError(405, "invalid_request_error",
                           f"Unrecognized request URL ({method}: {path}).")
        raise ApiError(404, "invalid_request_error",
                       f"Unrecognized request URL ({method}: {path}). Please see "
                       "https://stripe.com/docs or we can help at https://support.stripe.com/.")

    def api(self, method: str, path: str, params: Obj, ctx: Ctx) -> tuple[int, bytes, bool]:
        """Serve one ``/v1`` request: ``(status, json body, replayed)``.

        Holds the lock for the whole request, so an idempotent replay and the first
        execution can never interleave.
        """
        with self.lock:
            self.requests += 1
            if ctx.api_version:
                self.api_version = ctx.api_version
            key = ctx.idempotency_key if method == "POST" else None
            fingerprint = ""
            if key is not None:
                fingerprint = hashlib.sha256(
                    json.dumps(params, sort_keys=True).encode("utf-8")).hexdigest()
                hit = self.idempotency.get((ctx.account, key))
                if hit is not None:
                    h_method, h_path, h_fp, h_status, h_body = hit
                    if (h_method, h_path) != (method, path) or h_fp != fingerprint:
                        err = ApiError(
                            400, "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.")
                        return 400, json.dumps(err.body()).encode("utf-8"), False
                    return h_status, h_body, True
            try:
                fn, args, allowed = self._match(method, path)
                if allowed is not None:
                    unknown = sorted(set(params) - allowed)
                    if unknown:
                        raise invalid(f"Received unknown parameter: {unknown[0]}", unknown[0],
                                      "parameter_unknown")
                result = fn(ctx, params, *args)
                expand = [e for e in p_list(params, "expand") if isinstance(e, str)]
                if expand:
                    result = self.expand(result, expand)
                status, body = 200, json.dumps(result).encode("utf-8")
            except ApiError as e:
                status, body = e.status, json.dumps(e.body()).encode("utf-8")
            if key is not None:
                self.idempotency[(ctx.account, key)] = (method, path, fingerprint, status, body)
            return status, body, False

    # ---------------------------------------------------------------- expansion

    def expand(self, obj: Obj, paths: list[str]) -> Obj:
        for path in paths:
            obj = self._expand_one(obj, path.split("."))
        return obj

    def _expand_one(self, obj: Obj, parts: list[str]) -> Obj:
        if not parts:
            return obj
        key, rest = parts[0], parts[1:]
        if obj.get("object") == "list" and key == "data":
            out = dict(obj)
            out["data"] = [self._expand_one(item, rest) if isinstance(item, dict) else item
                           for item in obj["data"]]
            return out
        if obj.get("object") == "invoice" and key == "payments":
            out = dict(obj)
            pays = [self.objects[i] for i in self.internal.get(obj["id"], {}).get("payments", [])]
            lst: Obj = {"object": "list", "data": pays, "has_more": False,
                        "url": f"/v1/invoices/{obj['id']}/payments"}
            out["payments"] = self._expand_one(lst, rest)
            return out
        if key not in obj:
            raise invalid(f"This property cannot be expanded ({key}).", "expand")
        val = obj[key]
        if isinstance(val, str):
            target = self.objects.get(val)
            if target is None:
                return obj
            out = dict(obj)
            out[key] = self._expand_one(target, rest)
            return out
        if isinstance(val, dict):
            out = dict(obj)
            out[key] = self._expand_one(val, rest)
            return out
        if isinstance(val, list) and rest:
            out = dict(obj)
            out[key] = [self._expand_one(v, rest) if isinstance(v, dict) else v for v in val]
            return out
        return obj

    # ---------------------------------------------------------------- listing

    def _list(self, kind: str, params: Obj, url: str,
              pred: Callable[[Obj], bool] | None = None,
              account: str | None | bool = None) -> Obj:
        limit = p_int(params, "limit")
        limit = 10 if limit is None else limit
        if not 1 <= limit <= 100:
            raise invalid("This value must be between 1 and 100.", "limit")
        created = created_filter(params)
        ids = self.order.get(kind, [])
        after = p_str(params, "starting_after")
        before = p_str(params, "ending_before")

        def ok(i: str) -> bool:
            o = self.objects[i]
            if account is not False and self.owner.get(i) != account:
                return False
            if created is not None and not created(o["created"]):
                return False
            return pred is None or pred(o)

        out: list[Obj] = []
        if before is not None:
            if before not in self.index or self.objects[before]["object"] != kind:
                raise missing(kind, before, "ending_before")
            j = self.index[before] + 1
            while j < len(ids) and len(out) <= limit:
                if ok(ids[j]):
                    out.append(self.objects[ids[j]])
                j += 1
            has_more = len(out) > limit
            out = out[:limit]
            out.reverse()
        else:
            lo, hi = _created_bounds(params) if kind not in self.unsorted else (None, None)
            if after is not None:
                if after not in self.index or self.objects[after]["object"] != kind:
                    raise missing(kind, after, "starting_after")
                j = self.index[after] - 1
            elif hi is not None:
                # Sorted by created: skip everything newer than the range in one step.
                j = bisect.bisect_left(ids, hi, key=lambda i: self.objects[i]["created"]) - 1
            else:
                j = len(ids) - 1
            while j >= 0 and len(out) <= limit:
                if lo is not None and self.objects[ids[j]]["created"] < lo:
                    break  # sorted: nothing older can match
                if ok(ids[j]):
                    out.append(self.objects[ids[j]])
                j -= 1
            has_more = len(out) > limit
            out = out[:limit]
        return {"object": "list", "data": out, "has_more": has_more, "url": url}

    def _iter(self, kind: str) -> Iterator[Obj]:
        for i in self.order.get(kind, []):
            yield self.objects[i]

    # ================================================================ customers

    def create_customer(self, ctx: Ctx, p: Obj) -> Obj:
        obj = self._new("customer", "cus", email=p_str(p, "email"), name=p_str(p, "name"),
                        description=p_str(p, "description"), phone=p_str(p, "phone"),
                        metadata=p_metadata(p), address=None, balance=0, currency=None,
                        default_source=None, delinquent=False, discount=None,
                        invoice_prefix=secrets.token_hex(4).upper(),
                        invoice_settings={"custom_fields": None, "default_payment_method": None,
                                          "footer": None, "rendering_options": None},
                        next_invoice_sequence=1, preferred_locales=[], shipping=None,
                        tax_exempt="none", test_clock=None)
        self._store(obj, ctx.account)
        pm = p_str(p, "payment_method")
        if pm:
            self._attach(ctx, self._resolve_pm(pm), obj)
        inv = p_dict(p, "invoice_settings")
        if inv.get("default_payment_method"):
            self._set_customer_default_pm(obj, str(inv["default_payment_method"]))
        self.emit("customer.created", obj, ctx)
        return obj

    def _set_customer_default_pm(self, cus: Obj, pm_id: str) -> None:
        pm = self._get("payment_method", pm_id, param="invoice_settings[default_payment_method]",
                       label="PaymentMethod")
        if pm["customer"] != cus["id"]:
            raise invalid(f"No such PaymentMethod: '{pm_id}'; it is not attached to customer "
                          f"'{cus['id']}'.", "invoice_settings[default_payment_method]",
                          "resource_missing")
        cus["invoice_settings"]["default_payment_method"] = pm_id

    def retrieve_customer(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("customer", ident, account=ctx.account)

    def update_customer(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        cus = self._get("customer", ident, account=ctx.account)
        prev: Obj = {}
        for k in ("email", "name", "description", "phone"):
            if k in p:
                prev[k] = cus[k]
                cus[k] = p_str(p, k)
        if "metadata" in p:
            prev["metadata"] = cus["metadata"]
            cus["metadata"] = p_metadata(p, cus["metadata"])
        inv = p_dict(p, "invoice_settings")
        if "default_payment_method" in inv:
            prev["invoice_settings"] = dict(cus["invoice_settings"])
            if inv["default_payment_method"]:
                self._set_customer_default_pm(cus, str(inv["default_payment_method"]))
            else:
                cus["invoice_settings"]["default_payment_method"] = None
        self.emit("customer.updated", cus, ctx, previous=prev)
        return cus

    def delete_customer(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        cus = self._get("customer", ident, account=ctx.account)
        cus["deleted_sandbox"] = True
        self.emit("customer.deleted", cus, ctx)
        return {"id": cus["id"], "object": "customer", "deleted": True}

    def list_customers(self, ctx: Ctx, p: Obj) -> Obj:
        email = p_str(p, "email")
        return self._list("customer", p, "/v1/customers",
                          (lambda o: o["email"] == email) if email else None, ctx.account)

    # ================================================================ payment methods

    def _resolve_pm(self, ident: str, param: str = "payment_method") -> Obj:
        if ident in CARDS:
            return self._make_pm(ident)
        return self._get("payment_method", ident, param=param, label="PaymentMethod")

    def _make_pm(self, token: str, account: str | None = None) -> Obj:
        card = CARDS[token]
        exp_year = datetime.fromtimestamp(self.now(), UTC).year + 3
        obj = self._new(
            "payment_method", "pm", allow_redisplay="unspecified",
            billing_details={"address": {"city": None, "country": None, "line1": None,
                                         "line2": None, "postal_code": None, "state": None},
                             "email": None, "name": None, "phone": None, "tax_id": None},
            card={"brand": card.brand,
                  "checks": {"address_line1_check": None, "address_postal_code_check": None,
                             "cvc_check": "pass"},
                  "country": card.country, "display_brand": card.brand, "exp_month": 12,
                  "exp_year": exp_year,
                  "fingerprint": hashlib.sha256(token.encode()).hexdigest()[:16],
                  "funding": card.funding, "generated_from": None, "last4": card.last4,
                  "networks": {"available": [card.brand], "preferred": None},
                  "three_d_secure_usage": {"supported": True}, "wallet": None,
                  "regulated_status": "unregulated"},
            customer=None, metadata={}, type="card", customer_account=None)
        self.internal[obj["id"]] = {"card": token}
        return self._store(obj, account)

    def _card(self, pm: Obj) -> Card:
        return CARDS[self.internal[pm["id"]]["card"]]

    def create_payment_method(self, ctx: Ctx, p: Obj) -> Obj:
        if p_str(p, "type") not in (None, "card"):
            raise invalid("The sandbox only supports card payment methods.", "type")
        card = p_dict(p, "card")
        token = str(card.get("token") or "tok_visa")
        if token not in CARDS:
            raise missing("token", token, "card[token]")
        pm = self._make_pm(token, ctx.account)
        pm["metadata"] = p_metadata(p)
        return pm

    def retrieve_payment_method(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        if ident in CARDS:
            return self._make_pm(ident, ctx.account)
        return self._get("payment_method", ident, label="PaymentMethod")

    def list_payment_methods(self, ctx: Ctx, p: Obj) -> Obj:
        customer = p_req(p, "customer")
        self._get("customer", customer, param="customer")
        return self._list("payment_method", p, "/v1/payment_methods",
                          lambda o: o["customer"] == customer, False)

    def list_customer_pms(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        self._get("customer", ident)
        return self._list("payment_method", p, f"/v1/customers/{ident}/payment_methods",
                          lambda o: o["customer"] == ident, False)

    def attach_payment_method(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        cus = self._get("customer", p_req(p, "customer"), param="customer")
        pm = self._resolve_pm(ident, "payment_method")
        return self._attach(ctx, pm, cus)

    def _attach(self, ctx: Ctx, pm: Obj, cus: Obj) -> Obj:
        card = self._card(pm)
        if pm["customer"] not in (None, cus["id"]):
            raise invalid("The payment method you provided has already been attached to a "
                          "customer.", "payment_method", "payment_method_unexpected_state")
        if card.decline_on_attach:
            code = card.decline_code or "generic_decline"
            raise ApiError(402, "card_error", DECLINE_MESSAGES.get(code, "Your card was declined."),
                           code=card.error_code, decline_code=code, param="")
        pm["customer"] = cus["id"]
        self.emit("payment_method.attached", pm, ctx)
        return pm

    def detach_payment_method(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        pm = self._get("payment_method", ident, label="PaymentMethod")
        if pm["customer"] is None:
            raise invalid("The payment method is not attached to a customer.", None,
                          "payment_method_unexpected_state")
        pm["customer"] = None
        self.emit("payment_method.detached", pm, ctx)
        return pm

    # ================================================================ payment intents

    def _check_amount(self, amount: int, currency: str, param: str = "amount") -> None:
        if amount < cur.min_charge(currency):
            raise invalid("Amount must be at least "
                          f"{cur.min_charge(currency)} {currency} minor units", param,
                          "amount_too_small")
        if amount > 99999999:
            raise invalid("Amount must be no more than 99999999.", param, "amount_too_large")

    def create_payment_intent(self, ctx: Ctx, p: Obj, *, internal: Obj | None = None) -> Obj:
        amount = p_int(p, "amount", required=True)
        assert amount is not None
        currency = p_currency(p)
        self._check_amount(amount, currency)
        customer = p_str(p, "customer")
        if customer:
            self._get("customer", customer, param="customer")
        capture = p_str(p, "capture_method") or "automatic_async"
        if capture not in ("automatic", "automatic_async", "manual"):
            raise invalid(f"Invalid capture_method: {capture}", "capture_method")
        pm_id = p_str(p, "payment_method")
        pm = self._resolve_pm(pm_id) if pm_id else None
        if pm is not None and pm["customer"] not in (None, customer):
            raise invalid("The provided PaymentMethod is attached to another customer.",
                          "payment_method", "payment_method_unexpected_state")
        types = [str(t) for t in (p_list(p, "payment_method_types")
                                  or p_list(p, "allowed_payment_method_types"))] or ["card"]
        apm = p_dict(p, "automatic_payment_methods")
        pi_id = self._id("pi")
        obj = self._new(
            "payment_intent", None, id=pi_id, amount=amount, amount_capturable=0,
            amount_details={"tip": {}}, amount_received=0, application=None,
            application_fee_amount=None,
            automatic_payment_methods=(
                {"allow_redirects": apm.get("allow_redirects") or "always", "enabled": True}
                if (apm.get("enabled") == "true" or not p.get("payment_method_types"))
                else None),
            canceled_at=None, cancellation_reason=None, capture_method=capture,
            client_secret=f"{pi_id}_secret_{_rand(25)}", confirmation_method="automatic",
            currency=currency, customer=customer, description=p_str(p, "description"),
            last_payment_error=None, latest_charge=None, metadata=p_metadata(p),
            next_action=None, on_behalf_of=None,
            payment_method=pm["id"] if pm else None,
            payment_method_configuration_details=None,
            payment_method_options={"card": {"installments": None, "mandate_options": None,
                                             "network": None,
                                             "request_three_d_secure": "automatic"}},
            payment_method_types=types, processing=None,
            receipt_email=p_str(p, "receipt_email"), review=None,
            setup_future_usage=p_str(p, "setup_future_usage"), shipping=None,
            statement_descriptor=p_str(p, "statement_descriptor"),
            statement_descriptor_suffix=p_str(p, "statement_descriptor_suffix"),
            status="requires_confirmation" if pm else "requires_payment_method",
            transfer_data=None, transfer_group=p_str(p, "transfer_group"), source=None,
            excluded_payment_method_types=None, customer_account=None, managed_payments=None)
        self._store(obj, ctx.account)
        self.internal[obj["id"]] = dict(internal or {})
        self.emit("payment_intent.created", obj, ctx)
        if p_bool(p, "confirm"):
            if pm is None:
                raise invalid("You must provide a payment_method to confirm.", "payment_method",
                              "payment_intent_unexpected_state")
            self._confirm(ctx, obj, off_session=p_bool(p, "off_session"),
                          error_on_requires_action=p_bool(p, "error_on_requires_action"))
        return obj

    def retrieve_payment_intent(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("payment_intent", ident, account=ctx.account, label="payment_intent")

    def list_payment_intents(self, ctx: Ctx, p: Obj) -> Obj:
        customer = p_str(p, "customer")
        return self._list("payment_intent", p, "/v1/payment_intents",
                          (lambda o: o["customer"] == customer) if customer else None,
                          ctx.account)

    def update_payment_intent(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        pi = self._get("payment_intent", ident, account=ctx.account)
        prev: Obj = {}
        if "metadata" in p:
            prev["metadata"] = pi["metadata"]
            pi["metadata"] = p_metadata(p, pi["metadata"])
        for k in ("description", "receipt_email", "transfer_group"):
            if k in p:
                prev[k] = pi[k]
                pi[k] = p_str(p, k)
        if "amount" in p or "payment_method" in p or "customer" in p:
            if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
                raise invalid("You cannot update this PaymentIntent because it has a status of "
                              f"{pi['status']}.", None, "payment_intent_unexpected_state")
            if "amount" in p:
                amount = p_int(p, "amount", required=True)
                assert amount is not None
                self._check_amount(amount, pi["currency"])
                prev["amount"] = pi["amount"]
                pi["amount"] = amount
            if "customer" in p:
                self._get("customer", p_str(p, "customer"), param="customer")
                pi["customer"] = p_str(p, "customer")
            if "payment_method" in p:
                pm_id = p_str(p, "payment_method")
                pi["payment_method"] = self._resolve_pm(pm_id)["id"] if pm_id else None
                pi["status"] = ("requires_confirmation" if pi["payment_method"]
                                else "requires_payment_method")
        return pi

    def confirm_payment_intent(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        pi = self._get("payment_intent", ident, account=ctx.account)
        if pi["status"] not in ("requires_payment_method", "requires_confirmation",
                                "requires_action"):
            raise invalid(
                "This PaymentIntent's status is "
                f"{pi['status']}, which does not allow confirmation.", None,
                "payment_intent_unexpected_state")
        pm_id = p_str(p, "payment_method")
        if pm_id:
            pi["payment_method"] = self._resolve_pm(pm_id)["id"]
        if not pi["payment_method"]:
            raise invalid("You cannot confirm this PaymentIntent because it's missing a payment "
                          "method.", "payment_method", "payment_intent_unexpected_state")
        if "capture_method" in p:
            pi["capture_method"] = p_str(p, "capture_method")
        if "receipt_email" in p:
            pi["receipt_email"] = p_str(p, "receipt_email")
        self._confirm(ctx, pi, off_session=p_bool(p, "off_session"),
                      error_on_requires_action=p_bool(p, "error_on_requires_action"))
        return pi

    def _card_error(self, pi: Obj, charge: Obj | None, code: str, decline: str,
                    message: str) -> ApiError:
        extra: Obj = {"payment_intent": json.loads(json.dumps(pi))}
        if charge is not None:
            extra["charge"] = charge["id"]
        if pi["payment_method"]:
            extra["payment_method"] = json.loads(json.dumps(self.objects[pi["payment_method"]]))
        return ApiError(402, "card_error", message, code=code, decline_code=decline, extra=extra)

    def _confirm(self, ctx: Ctx, pi: Obj, *, off_session: bool = False,
                 error_on_requires_action: bool = False, authenticated: bool = False) -> None:
        """Attempt the payment; raises a card error (after recording the failure) on decline."""
        pm = self.objects[pi["payment_method"]]
        card = self._card(pm)
        info = self.internal.setdefault(pi["id"], {})
        if card.three_ds and not authenticated and not info.get("authenticated"):
            if off_session or error_on_requires_action:
                self._fail_payment(ctx, pi, pm, "authentication_required", "card_declined",
                                   charge=False)
                raise self._card_error(pi, None, "authentication_required",
                                       "authentication_required",
                                       DECLINE_MESSAGES["authentication_required"])
            prev = {"status": pi["status"], "next_action": None}
            pi["status"] = "requires_action"
            pi["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect",
                                   "stripe_js": f"{self.base_url}/_sandbox/payment_intents/"
                                                f"{pi['id']}/authenticate",
                                   "source": pm["id"]}}
            self.emit("payment_intent.requires_action", pi, ctx, previous=prev)
            return
        if card.decline_code is not None:
            charge = self._fail_payment(ctx, pi, pm, card.decline_code, card.error_code)
            code = card.decline_code
            raise self._card_error(pi, charge, card.error_code, code,
                                   DECLINE_MESSAGES.get(code, "Your card was declined."))
        self._succeed_payment(ctx, pi, pm, card)

    def _charge_obj(self, pi: Obj, pm: Obj, *, status: str, captured: bool,
                    failure_code: str | None = None, failure_message: str | None = None,
                    outcome: Obj | None = None) -> Obj:
        card = self._card(pm)
        ch_id = self._id("ch")
        details = template("charge")["payment_method_details"]
        details["card"].update({
            "amount_authorized": pi["amount"] if status == "succeeded" else None,
            "brand": card.brand, "country": card.country, "exp_month": pm["card"]["exp_month"],
            "exp_year": pm["card"]["exp_year"], "fingerprint": pm["card"]["fingerprint"],
            "funding": card.funding, "installments": None, "last4": card.last4,
            "network": card.brand, "three_d_secure": None, "wallet": None,
            "authorization_code": "123456" if status == "succeeded" else None,
            "regulated_status": "unregulated", "network_transaction_id": _rand(15),
            "mandate": None,
            "overcapture": {"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
        })
        if card.three_ds:
            details["card"]["three_d_secure"] = {
                "authentication_flow": "challenge", "electronic_commerce_indicator": "05",
                "exemption_indicator": None, "result": "authenticated", "result_reason": None,
                "transaction_id": _rand(16), "version": "2.2.0"}
        ch = self._new(
            "charge", None, id=ch_id, amount=pi["amount"], amount_captured=0, amount_refunded=0,
            application=None, application_fee=None, application_fee_amount=None,
            balance_transaction=None, billing_details=pm["billing_details"],
            calculated_statement_descriptor="CREATORPAY", captured=captured,
            currency=pi["currency"], customer=pi["customer"], description=pi["description"],
            disputed=False, failure_balance_transaction=None, failure_code=failure_code,
            failure_message=failure_message, fraud_details={}, metadata=dict(pi["metadata"]),
            on_behalf_of=None,
            outcome=outcome or {
                "advice_code": None, "network_advice_code": None, "network_decline_code": None,
                "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                "risk_score": 32, "seller_message": "Payment complete.", "type": "authorized"},
            paid=status == "succeeded", payment_intent=pi["id"], payment_method=pm["id"],
            payment_method_details=details, receipt_email=pi["receipt_email"],
            receipt_number=None, receipt_url=f"{self.base_url}/_sandbox/receipts/{ch_id}",
            refunded=False,
            refunds={"object": "list", "data": [], "has_more": False,
                     "url": f"/v1/charges/{ch_id}/refunds"},
            review=None, shipping=None, source_transfer=None,
            statement_descriptor=pi["statement_descriptor"],
            statement_descriptor_suffix=pi["statement_descriptor_suffix"], status=status,
            transfer_data=None, transfer_group=pi["transfer_group"], source=None)
        return ch

    def _fail_payment(self, ctx: Ctx, pi: Obj, pm: Obj, decline: str, code: str,
                      charge: bool = True) -> Obj | None:
        message = DECLINE_MESSAGES.get(decline, "Your card was declined.")
        ch: Obj | None = None
        if charge:
            ch = self._charge_obj(
                pi, pm, status="failed", captured=False, failure_code=code,
                failure_message=message,
                outcome={"advice_code": "try_again_later", "network_advice_code": None,
                         "network_decline_code": None, "network_status": "declined_by_network",
                         "reason": decline, "risk_level": "normal", "risk_score": 40,
                         "seller_message": "The bank did not return any further details with "
                                           "this decline.",
                         "type": "issuer_declined"})
            self._store(ch, self.owner.get(pi["id"]))
            pi["latest_charge"] = ch["id"]
        prev = {"status": pi["status"], "last_payment_error": pi["last_payment_error"]}
        pi["status"] = "requires_payment_method"
        pi["next_action"] = None
        pi["last_payment_error"] = {
            "charge": ch["id"] if ch else None, "code": code, "decline_code": decline,
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            "message": message, "param": None,
            "payment_method": json.loads(json.dumps(pm)), "type": "card_error"}
        if ch is not None:
            self.emit("charge.failed", ch, ctx)
        self.emit("payment_intent.payment_failed", pi, ctx, previous=prev)
        return ch

    def _succeed_payment(self, ctx: Ctx, pi: Obj, pm: Obj, card: Card) -> None:
        manual = pi["capture_method"] == "manual"
        ch = self._charge_obj(pi, pm, status="succeeded", captured=not manual)
        account = self.owner.get(pi["id"])
        self._store(ch, account)
        prev: Obj = {"status": pi["status"]}
        pi["latest_charge"] = ch["id"]
        pi["last_payment_error"] = None
        pi["next_action"] = None
        if manual:
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
            self.emit("charge.succeeded", ch, ctx)
            self.emit("payment_intent.amount_capturable_updated", pi, ctx,
                      previous={"amount_capturable": 0, "status": prev["status"]})
        else:
            self._capture_charge(ch, pi["amount"], card)
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]
            self.emit("charge.succeeded", ch, ctx)
            self.emit("payment_intent.succeeded", pi, ctx, previous=prev)
        if card.dispute:
            self.schedule(self.now(), "auto_dispute", ch["id"])
        self._after_pi_success(ctx, pi)

    def _capture_charge(self, ch: Obj, amount: int, card: Card) -> None:
        fee = cur.processing_fee(amount, ch["currency"], self.fee_percent)
        delay = 0 if card.bypass_pending else CHARGE_AVAILABLE_DELAY
        bt = self._balance_txn(amount, ch["currency"], "charge", ch["id"], fee=fee,
                               description=ch["description"], delay=delay,
                               account=self.owner.get(ch["id"]))
        ch["captured"] = True
        ch["amount_captured"] = amount
        ch["balance_transaction"] = bt["id"]

    def _balance_txn(self, amount: int, currency: str, type_: str, source: str | None, *,
                     fee: int = 0, description: str | None = None, delay: int = 0,
                     category: str | None = None, account: str | None = None,
                     fee_description: str = "Stripe processing fees") -> Obj:
        now = self.now()
        fee_details = ([{"amount": fee, "application": None, "currency": currency,
                         "description": fee_description, "type": "stripe_fee"}]
                       if fee else [])
        bt = self._new("balance_transaction", "txn", amount=amount,
                       available_on=now + delay, currency=currency, description=description,
                       exchange_rate=None, fee=fee, fee_details=fee_details, net=amount - fee,
                       reporting_category=category or type_, source=source,
                       status="pending" if delay > 0 else "available", type=type_,
                       balance_type="payments")
        self._store(bt, account)
        if delay > 0:
            self.schedule(now + delay, "bt_available", bt["id"])
        return bt

    def _job_bt_available(self, bt_id: str) -> None:
        bt = self.objects[bt_id]
        if bt["available_on"] <= self.now():
            bt["status"] = "available"

    def capture_payment_intent(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        pi = self._get("payment_intent", ident, account=ctx.account)
        if pi["status"] != "requires_capture":
            raise invalid("This PaymentIntent could not be captured because it has a status of "
                          f"{pi['status']}. Only a PaymentIntent with one of the following "
                          "statuses may be captured: requires_capture.", None,
                          "payment_intent_unexpected_state")
        amount = p_int(p, "amount_to_capture", minimum=1)
        amount = pi["amount_capturable"] if amount is None else amount
        if amount > pi["amount_capturable"]:
            raise invalid("The amount to capture must be at most the amount capturable "
                          f"({pi['amount_capturable']}).", "amount_to_capture",
                          "amount_too_large")
        if "metadata" in p:
            pi["metadata"] = p_metadata(p, pi["metadata"])
        ch = self.objects[pi["latest_charge"]]
        pm = self.objects[pi["payment_method"]]
        self._capture_charge(ch, amount, self._card(pm))
        prev = {"status": pi["status"], "amount_capturable": pi["amount_capturable"],
                "amount_received": 0}
        pi["status"] = "succeeded"
        pi["amount_capturable"] = 0
        pi["amount_received"] = amount
        self.emit("charge.captured", ch, ctx, previous={"captured": False, "amount_captured": 0,
                                                        "balance_transaction": None})
        self.emit("payment_intent.succeeded", pi, ctx, previous=prev)
        return pi

    def cancel_payment_intent(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        pi = self._get("payment_intent", ident, account=ctx.account)
        if pi["status"] in ("succeeded", "canceled", "processing"):
            raise invalid("You cannot cancel this PaymentIntent because it has a status of "
                          f"{pi['status']}. Only a PaymentIntent with one of the following "
                          "statuses may be canceled: requires_payment_method, requires_capture,"
                          " requires_confirmation, requires_action, processing.", None,
                          "payment_intent_unexpected_state")
        reason = p_str(p, "cancellation_reason") or "requested_by_customer"
        if reason not in ("duplicate", "fraudulent", "requested_by_customer", "abandoned"):
            raise invalid(f"Invalid cancellation_reason: {reason}", "cancellation_reason")
        prev = {"status": pi["status"], "canceled_at": None, "cancellation_reason": None}
        if pi["status"] == "requires_capture":
            ch = self.objects[pi["latest_charge"]]
            ch["refunded"] = True
            ch["amount_refunded"] = ch["amount"]
            pi["amount_capturable"] = 0
        pi["status"] = "canceled"
        pi["canceled_at"] = self.now()
        pi["cancellation_reason"] = reason
        pi["next_action"] = None
        self.emit("payment_intent.canceled", pi, ctx, previous=prev)
        return pi

    def authenticate(self, pi_id: str, outcome: str) -> Obj:
        """Complete (or fail) 3-D Secure for a PaymentIntent in requires_action."""
        with self.lock:
            pi = self._get("payment_intent", pi_id, account=False)
            if pi["status"] != "requires_action":
                raise invalid("PaymentIntent is not in requires_action.", None,
                              "payment_intent_unexpected_state")
            ctx = Ctx()
            if outcome == "fail":
                pm = self.objects[pi["payment_method"]]
                self._fail_payment(ctx, pi, pm, "authentication_required", "card_declined",
                                   charge=False)
                pi["last_payment_error"]["code"] = "payment_intent_authentication_failure"
                return pi
            self.internal.setdefault(pi["id"], {})["authenticated"] = True
            with contextlib.suppress(ApiError):
                self._confirm(ctx, pi, authenticated=True)
            return pi

    def _after_pi_success(self, ctx: Ctx, pi: Obj) -> None:
        """Hook: a PaymentIntent succeeded (subscriptions mark their invoice paid)."""

    # ================================================================ charges

    def retrieve_charge(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("charge", ident, account=ctx.account)

    def update_charge(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        ch = self._get("charge", ident, account=ctx.account)
        if "metadata" in p:
            ch["metadata"] = p_metadata(p, ch["metadata"])
        if "description" in p:
            ch["description"] = p_str(p, "description")
        return ch

    def list_charges(self, ctx: Ctx, p: Obj) -> Obj:
        pi = p_str(p, "payment_intent")
        customer = p_str(p, "customer")
        tg = p_str(p, "transfer_group")

        def pred(o: Obj) -> bool:
            return ((pi is None or o["payment_intent"] == pi)
                    and (customer is None or o["customer"] == customer)
                    and (tg is None or o["transfer_group"] == tg))
        return self._list("charge", p, "/v1/charges", pred, ctx.account)

    def list_charge_refunds(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        self._get("charge", ident, account=ctx.account)
        return self._list("refund", p, f"/v1/charges/{ident}/refunds",
                          lambda o: o["charge"] == ident, ctx.account)

    # ================================================================ refunds

    def create_refund(self, ctx: Ctx, p: Obj) -> Obj:
        pi_id, ch_id = p_str(p, "payment_intent"), p_str(p, "charge")
        if not pi_id and not ch_id:
            raise invalid("One of the following params should be provided for this request: "
                          "payment_intent or charge.", "payment_intent", "parameter_missing")
        if pi_id:
            pi = self._get("payment_intent", pi_id, param="payment_intent", account=ctx.account)
            if pi["status"] != "succeeded" or not pi["latest_charge"]:
                raise invalid(f"This PaymentIntent ({pi_id}) does not have a successful charge "
                              "to refund.", "payment_intent", "charge_not_refundable")
            ch = self.objects[pi["latest_charge"]]
        else:
            ch = self._get("charge", ch_id, param="charge", account=ctx.account)
        if not ch["captured"] or ch["status"] != "succeeded":
            raise invalid(f"Charge {ch['id']} has not been captured; cancel the PaymentIntent "
                          "instead.", "charge", "charge_not_refundable")
        if ch["disputed"]:
            raise invalid(f"Charge {ch['id']} has been charged back; cannot issue a refund.",
                          "charge", "charge_disputed")
        remaining = ch["amount_captured"] - ch["amount_refunded"]
        if remaining <= 0:
            raise invalid(f"Charge {ch['id']} has already been refunded.", "charge",
                          "charge_already_refunded")
        amount = p_int(p, "amount", minimum=1)
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise invalid(f"Refund amount ({amount}) is greater than unrefunded amount on "
                          f"charge ({remaining})", "amount", "amount_too_large")
        reason = p_str(p, "reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise invalid(f"Invalid reason: {reason}", "reason")
        account = self.owner.get(ch["id"])
        re = self._new(
            "refund", "re", amount=amount, balance_transaction=None, charge=ch["id"],
            currency=ch["currency"],
            destination_details={"card": {"reference": _rand(12), "reference_status": "pending",
                                          "reference_type": "acquirer_reference_number",
                                          "type": "refund"}, "type": "card"},
            metadata=p_metadata(p), payment_intent=ch["payment_intent"], reason=reason,
            receipt_number=None, source_transfer_reversal=None, status="succeeded",
            transfer_reversal=None, customer=ch["customer"], customer_account=None,
            payment_method=ch["payment_method"])
        bt = self._balance_txn(-amount, ch["currency"], "refund", re["id"],
                               description="REFUND FOR CHARGE", account=account)
        re["balance_transaction"] = bt["id"]
        self._store(re, account)
        prev = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
        ch["refunds"]["data"].insert(0, re)
        self.emit("refund.created", re, ctx)
        self.emit("charge.refunded", ch, ctx, previous=prev)
        pm = self.objects.get(ch["payment_method"] or "")
        if pm is not None and self._card(pm).refund_fails:
            self.schedule(self.now(), "refund_fail", re["id"])
        return re

    def _job_refund_fail(self, re_id: str) -> None:
        re = self.objects[re_id]
        ch = self.objects[re["charge"]]
        account = self.owner.get(re_id)
        bt = self._balance_txn(re["amount"], re["currency"], "refund_failure", re["id"],
                               description="REFUND FAILURE", account=account)
        prev = {"status": re["status"]}
        re["status"] = "failed"
        re["failure_reason"] = "expired_or_canceled_card"
        re["failure_balance_transaction"] = bt["id"]
        ch["amount_refunded"] -= re["amount"]
        ch["refunded"] = False
        self.emit("charge.refund.updated", re, previous=prev)
        self.emit("refund.updated", re, previous=prev)
        self.emit("refund.failed", re, previous=prev)

    def retrieve_refund(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("refund", ident, account=ctx.account)

    def update_refund(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        re = self._get("refund", ident, account=ctx.account)
        re["metadata"] = p_metadata(p, re["metadata"])
        return re

    def list_refunds(self, ctx: Ctx, p: Obj) -> Obj:
        pi, ch = p_str(p, "payment_intent"), p_str(p, "charge")
        return self._list("refund", p, "/v1/refunds",
                          lambda o: (pi is None or o["payment_intent"] == pi)
                          and (ch is None or o["charge"] == ch), ctx.account)

    # ================================================================ disputes

    def _job_auto_dispute(self, ch_id: str) -> None:
        self.create_dispute(ch_id)

    def create_dispute(self, ch_id: str, reason: str = "fraudulent",
                       amount: int | None = None) -> Obj:
        with self.lock:
            ch = self._get("charge", ch_id, account=False)
            if ch["disputed"]:
                raise invalid("Charge is already disputed.", "charge", "charge_disputed")
            if not ch["captured"]:
                raise invalid("Charge is not captured.", "charge", "charge_not_captured")
            disputable = ch["amount_captured"] - ch["amount_refunded"]
            amount = disputable if amount is None else min(amount, disputable)
            if amount <= 0:
                raise invalid("Nothing left to dispute.", "charge", "charge_already_refunded")
            account = self.owner.get(ch_id)
            card = ch["payment_method_details"]["card"]
            ev = template("dispute")["evidence"]
            for k in ev:
                ev[k] = {} if k == "enhanced_evidence" else None
            dp = self._new(
                "dispute", "dp", amount=amount, balance_transactions=[], charge=ch_id,
                currency=ch["currency"], evidence=ev,
                evidence_details={"due_by": self.now() + 7 * DAY, "has_evidence": False,
                                  "past_due": False, "submission_count": 0,
                                  "enhanced_eligibility": {}},
                is_charge_refundable=False, metadata={}, payment_intent=ch["payment_intent"],
                payment_method_details={"card": {"brand": card["brand"],
                                                 "case_type": "chargeback",
                                                 "network_reason_code": "10.4",
                                                 "network": card["brand"]},
                                        "type": "card"},
                reason=reason, status="needs_response", enhanced_eligibility_types=[])
            fee = cur.dispute_fee(ch["currency"])
            bt = self._balance_txn(-amount, ch["currency"], "adjustment", dp["id"], fee=fee,
                                   description=f"Chargeback withdrawal for {ch_id}",
                                   category="dispute", account=account,
                                   fee_description="Dispute fee")
            dp["balance_transactions"] = [bt]
            self._store(dp, account)
            ch["disputed"] = True
            self.emit("charge.dispute.created", dp)
            self.emit("charge.dispute.funds_withdrawn", dp)
            return dp

    def close_dispute(self, dp_id: str, outcome: str) -> Obj:
        with self.lock:
            dp = self._get("dispute", dp_id, account=False)
            if outcome not in ("won", "lost"):
                raise invalid("outcome must be 'won' or 'lost'", "outcome")
            if dp["status"] in ("won", "lost"):
                raise invalid(f"Dispute {dp_id} is already closed.", None,
                              "dispute_already_closed")
            prev = {"status": dp["status"]}
            account = self.owner.get(dp_id)
            if outcome == "won":
                fee = cur.dispute_fee(dp["currency"])
                bt = self._balance_txn(dp["amount"], dp["currency"], "adjustment", dp["id"],
                                       fee=-fee,
                                       description=f"Chargeback reversal for {dp['charge']}",
                                       category="dispute_reversal", account=account,
                                       fee_description="Dispute fee refund")
                dp["balance_transactions"].append(bt)
                dp["status"] = "won"
                self.emit("charge.dispute.funds_reinstated", dp)
            else:
                dp["status"] = "lost"
            self.emit("charge.dispute.closed", dp, previous=prev)
            return dp

    def retrieve_dispute(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("dispute", ident, account=ctx.account)

    def update_dispute(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        dp = self._get("dispute", ident, account=ctx.account)
        prev: Obj = {}
        if "metadata" in p:
            prev["metadata"] = dp["metadata"]
            dp["metadata"] = p_metadata(p, dp["metadata"])
        ev = p_dict(p, "evidence")
        for k, v in ev.items():
            if k not in dp["evidence"]:
                raise invalid(f"Received unknown parameter: evidence[{k}]", f"evidence[{k}]",
                              "parameter_unknown")
            dp["evidence"][k] = v
        if ev:
            dp["evidence_details"]["has_evidence"] = True
        if p_bool(p, "submit", True) and ev and dp["status"] == "needs_response":
            prev["status"] = dp["status"]
            dp["status"] = "under_review"
            dp["evidence_details"]["submission_count"] += 1
        self.emit("charge.dispute.updated", dp, ctx, previous=prev)
        return dp

    def close_dispute_api(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        self._get("dispute", ident, account=ctx.account)
        return self.close_dispute(ident, "lost")

    def list_disputes(self, ctx: Ctx, p: Obj) -> Obj:
        pi, ch = p_str(p, "payment_intent"), p_str(p, "charge")
        return self._list("dispute", p, "/v1/disputes",
                          lambda o: (pi is None or o["payment_intent"] == pi)
                          and (ch is None or o["charge"] == ch), ctx.account)

    # ================================================================ balance

    def balance_of(self, account: str | None) -> dict[str, tuple[int, int]]:
        """``{currency: (available, pending)}`` for the platform or a connected account."""
        now = self.now()
        out: dict[str, tuple[int, int]] = {}
        for bt in self._iter("balance_transaction"):
            if self.owner.get(bt["id"]) != account:
                continue
            a, pnd = out.get(bt["currency"], (0, 0))
            if bt["available_on"] <= now:
                a += bt["net"]
            else:
                pnd += bt["net"]
            out[bt["currency"]] = (a, pnd)
        return out

    def retrieve_balance(self, ctx: Ctx, p: Obj) -> Obj:
        bal = self.balance_of(ctx.account) or {"usd": (0, 0)}
        obj = template("balance")
        obj["available"] = [{"amount": a, "currency": c, "source_types": {"card": a}}
                            for c, (a, _) in sorted(bal.items())]
        obj["pending"] = [{"amount": pnd, "currency": c, "source_types": {"card": pnd}}
                          for c, (_, pnd) in sorted(bal.items())]
        obj["connect_reserved"] = [{"amount": 0, "currency": c} for c in sorted(bal)]
        return obj

    def retrieve_balance_transaction(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("balance_transaction", ident, account=ctx.account)

    def list_balance_transactions(self, ctx: Ctx, p: Obj) -> Obj:
        type_ = p_str(p, "type")
        source = p_str(p, "source")
        currency = p_str(p, "currency")
        payout = p_str(p, "payout")
        payout_ids: set[str] | None = None
        if payout:
            po = self._get("payout", payout, param="payout", account=ctx.account)
            payout_ids = set(self.internal.get(po["id"], {}).get("txns", []))

        def pred(o: Obj) -> bool:
            return ((type_ is None or o["type"] == type_)
                    and (source is None or o["source"] == source)
                    and (currency is None or o["currency"] == currency)
                    and (payout_ids is None or o["id"] in payout_ids))
        return self._list("balance_transaction", p, "/v1/balance_transactions", pred,
                          ctx.account)

    # ================================================================ products, prices

    def create_product(self, ctx: Ctx, p: Obj) -> Obj:
        pid = p_str(p, "id")
        if pid and pid in self.objects:
            raise invalid("Product already exists.", "id", "resource_already_exists")
        obj = self._new("product", None if pid else "prod", name=p_req(p, "name"),
                        description=p_str(p, "description"), metadata=p_metadata(p),
                        active=p_bool(p, "active", True), default_price=None, images=[],
                        marketing_features=[], package_dimensions=None, shippable=None,
                        statement_descriptor=p_str(p, "statement_descriptor"), tax_code=None,
                        unit_label=p_str(p, "unit_label"), url=None, type="service")
        if pid:
            obj["id"] = pid
        obj["updated"] = obj["created"]
        self._store(obj, ctx.account)
        self.emit("product.created", obj, ctx)
        return obj

    def retrieve_product(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("product", ident)

    def update_product(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        obj = self._get("product", ident)
        prev: Obj = {}
        for k in ("name", "description"):
            if k in p:
                prev[k] = obj[k]
                obj[k] = p_str(p, k, required=k == "name")
        if "active" in p:
            prev["active"] = obj["active"]
            obj["active"] = p_bool(p, "active")
        if "default_price" in p:
            prev["default_price"] = obj["default_price"]
            obj["default_price"] = self._get("price", p_str(p, "default_price"),
                                             param="default_price")["id"]
        if "metadata" in p:
            prev["metadata"] = obj["metadata"]
            obj["metadata"] = p_metadata(p, obj["metadata"])
        obj["updated"] = self.now()
        self.emit("product.updated", obj, ctx, previous=prev)
        return obj

    def list_products(self, ctx: Ctx, p: Obj) -> Obj:
        return self._list("product", p, "/v1/products", None, False)

    def create_price(self, ctx: Ctx, p: Obj) -> Obj:
        currency = p_currency(p)
        amount = p_int(p, "unit_amount", required=True, minimum=0)
        product = p_str(p, "product")
        if product:
            self._get("product", product, param="product")
        else:
            pdata = p_dict(p, "product_data")
            if not pdata:
                raise invalid("Missing required param: product.", "product", "parameter_missing")
            product = self.create_product(ctx, {"name": pdata.get("name", ""),
                                                "metadata": pdata.get("metadata", {})})["id"]
        rec = p_dict(p, "recurring")
        recurring: Obj | None = None
        if rec:
            interval = rec.get("interval")
            if interval not in ("day", "week", "month", "year"):
                raise invalid("Invalid recurring[interval]", "recurring[interval]")
            count = p_int(rec, "interval_count", minimum=1) or 1
            recurring = {"interval": interval, "interval_count": count, "meter": None,
                         "usage_type": "licensed",
                         "trial_period_days": p_int(rec, "trial_period_days")}
        obj = self._new("price", "price", active=p_bool(p, "active", True),
                        billing_scheme="per_unit", currency=currency, custom_unit_amount=None,
                        lookup_key=p_str(p, "lookup_key"), metadata=p_metadata(p),
                        nickname=p_str(p, "nickname"), product=product, recurring=recurring,
                        tax_behavior=p_str(p, "tax_behavior") or "unspecified", tiers_mode=None,
                        transform_quantity=None,
                        type="recurring" if recurring else "one_time", unit_amount=amount,
                        unit_amount_decimal=str(amount))
        self._store(obj, ctx.account)
        self.emit("price.created", obj, ctx)
        return obj

    def retrieve_price(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("price", ident)

    def update_price(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        obj = self._get("price", ident)
        prev: Obj = {}
        if "active" in p:
            prev["active"] = obj["active"]
            obj["active"] = p_bool(p, "active")
        if "nickname" in p:
            prev["nickname"] = obj["nickname"]
            obj["nickname"] = p_str(p, "nickname")
        if "metadata" in p:
            prev["metadata"] = obj["metadata"]
            obj["metadata"] = p_metadata(p, obj["metadata"])
        self.emit("price.updated", obj, ctx, previous=prev)
        return obj

    def list_prices(self, ctx: Ctx, p: Obj) -> Obj:
        product = p_str(p, "product")
        return self._list("price", p, "/v1/prices",
                          (lambda o: o["product"] == product) if product else None, False)

    # ================================================================ subscriptions (see subs)

    # ================================================================ events

    def retrieve_event(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("event", ident, account=ctx.account)

    def list_events(self, ctx: Ctx, p: Obj) -> Obj:
        single = p_str(p, "type")
        types = [str(t) for t in p_list(p, "types")]
        if single and types:
            raise invalid("You may only specify one of type and types.", "types")
        if single:
            types = [single]
        exact = {t for t in types if not t.endswith("*")}
        prefixes = tuple(t[:-1] for t in types if t.endswith("*"))

        def pred(o: Obj) -> bool:
            if not types:
                return True
            t = o["type"]
            return t in exact or (bool(prefixes) and t.startswith(prefixes))
        return self._list("event", p, "/v1/events", pred, ctx.account)

    # ================================================================ sandbox helpers

    def count_objects(self, kind: str, metadata: dict[str, str] | None = None) -> list[str]:
        with self.lock:
            out = []
            for o in self._iter(kind):
                md = o.get("metadata") or {}
                if metadata and any(md.get(k) != v for k, v in metadata.items()):
                    continue
                out.append(o["id"])
            return out


def _created_bounds(params: Obj) -> tuple[int | None, int | None]:
    """``created[gte|gt]`` and ``created[lt|lte]`` as ``(lowest, first excluded)``, if given."""
    v = params.get("created")
    if not isinstance(v, dict):
        return None, None
    lo = hi = None
    with contextlib.suppress(TypeError, ValueError):
        if "gte" in v:
            lo = int(v["gte"])
        elif "gt" in v:
            lo = int(v["gt"]) + 1
        if "lt" in v:
            hi = int(v["lt"])
        elif "lte" in v:
            hi = int(v["lte"]) + 1
    return lo, hi
