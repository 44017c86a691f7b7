"""Customers and their payment methods (a family of ``Sandbox``; see ``engine.py``)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from payments.sandbox.core import SandboxCore, route
from payments.sandbox.model import (
    CARDS,
    DECLINE_MESSAGES,
    ApiError,
    Card,
    Ctx,
    Obj,
    invalid,
    missing,
    p_dict,
    p_metadata,
    p_req,
    p_str,
)


class CustomersMixin(SandboxCore):
    """Customers, payment methods, Stripe's test cards (``pm_card_*``, ``tok_*``)."""

    # ---------------------------------------------------------------- customers

    @route("POST", "/v1/customers",
           params={"email", "name", "description", "metadata", "phone", "payment_method",
                   "invoice_settings", "address", "preferred_locales"})
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

    @route("GET", "/v1/customers/<ident>")
    def retrieve_customer(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("customer", ident, account=ctx.account)

    @route("POST", "/v1/customers/<ident>",
           params={"email", "name", "description", "metadata", "phone", "invoice_settings",
                   "address"})
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

    @route("DELETE", "/v1/customers/<ident>")
    def delete_customer(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        cus = self._get("customer", ident, account=ctx.account)
        cus["deleted_sandbox"] = True
        self.emit("customer.deleted", cus, ctx)
        return {"id": cus["id"], "object": "customer", "deleted": True}

    @route("GET", "/v1/customers")
    def list_customers(self, ctx: Ctx, p: Obj) -> Obj:
        email = p_str(p, "email")
        return self._list("customer", p, "/v1/customers",
                          (lambda o: o["email"] == email) if email else None, ctx.account)

    # ---------------------------------------------------------------- payment methods

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

    @route("POST", "/v1/payment_methods",
           params={"type", "card", "billing_details", "metadata", "customer", "payment_method"})
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

    @route("GET", "/v1/payment_methods/<ident>")
    def retrieve_payment_method(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        if ident in CARDS:
            return self._make_pm(ident, ctx.account)
        return self._get("payment_method", ident, label="PaymentMethod")

    @route("GET", "/v1/payment_methods")
    def list_payment_methods(self, ctx: Ctx, p: Obj) -> Obj:
        customer = p_req(p, "customer")
        self._get("customer", customer, param="customer")
        return self._list("payment_method", p, "/v1/payment_methods",
                          lambda o: o["customer"] == customer, False)

    @route("GET", "/v1/customers/<ident>/payment_methods")
    def list_customer_pms(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        self._get("customer", ident)
        return self._list("payment_method", p, f"/v1/customers/{ident}/payment_methods",
                          lambda o: o["customer"] == ident, False)

    @route("POST", "/v1/payment_methods/<ident>/attach", params={"customer"})
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

    @route("POST", "/v1/payment_methods/<ident>/detach", params=())
    def detach_payment_method(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        pm = self._get("payment_method", ident, label="PaymentMethod")
        if pm["customer"] is None:
            raise invalid("The payment method is not attached to a customer.", None,
                          "payment_method_unexpected_state")
        pm["customer"] = None
        self.emit("payment_method.detached", pm, ctx)
        return pm
