"""PaymentIntents and the charges they make (a family of ``Sandbox``; see ``engine.py``)."""

from __future__ import annotations

import contextlib
import json

from payments.sandbox import currency as cur
from payments.sandbox._balance import BalanceMixin
from payments.sandbox._customers import CustomersMixin
from payments.sandbox.core import route
from payments.sandbox.model import (
    CHARGE_AVAILABLE_DELAY,
    DECLINE_MESSAGES,
    ApiError,
    Card,
    Ctx,
    Obj,
    _rand,
    invalid,
    p_bool,
    p_currency,
    p_dict,
    p_int,
    p_list,
    p_metadata,
    p_str,
    template,
)


class PaymentsMixin(CustomersMixin, BalanceMixin):
    """PaymentIntents (confirm, 3-D Secure, declines, capture, cancel) and charges."""

    # ---------------------------------------------------------------- payment intents

    def _check_amount(self, amount: int, currency: str, param: str = "amount") -> None:
        if amount < cur.min_charge(currency):
            raise invalid("Amount must be at least "
                          f"{cur.min_charge(currency)} {currency} minor units", param,
                          "amount_too_small")
        if amount > 99999999:
            raise invalid("Amount must be no more than 99999999.", param, "amount_too_large")

    @route("POST", "/v1/payment_intents",
           params={"amount", "currency", "metadata", "customer", "payment_method", "confirm",
                   "capture_method", "receipt_email", "description", "statement_descriptor",
                   "statement_descriptor_suffix", "transfer_group", "off_session",
                   "setup_future_usage", "payment_method_types", "allowed_payment_method_types",
                   "automatic_payment_methods", "return_url", "error_on_requires_action",
                   "confirmation_method", "on_behalf_of", "payment_method_options",
                   "use_stripe_sdk"})
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

    @route("GET", "/v1/payment_intents/<ident>")
    def retrieve_payment_intent(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("payment_intent", ident, account=ctx.account, label="payment_intent")

    @route("GET", "/v1/payment_intents")
    def list_payment_intents(self, ctx: Ctx, p: Obj) -> Obj:
        customer = p_str(p, "customer")
        return self._list("payment_intent", p, "/v1/payment_intents",
                          (lambda o: o["customer"] == customer) if customer else None,
                          ctx.account)

    @route("POST", "/v1/payment_intents/<ident>",
           params={"metadata", "description", "receipt_email", "payment_method", "amount",
                   "transfer_group", "customer"})
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

    @route("POST", "/v1/payment_intents/<ident>/confirm",
           params={"payment_method", "off_session", "return_url", "error_on_requires_action",
                   "receipt_email", "setup_future_usage", "use_stripe_sdk", "capture_method"})
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

    @route("POST", "/v1/payment_intents/<ident>/capture",
           params={"amount_to_capture", "metadata", "final_capture", "statement_descriptor"})
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

    @route("POST", "/v1/payment_intents/<ident>/cancel", params={"cancellation_reason"})
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

    # ---------------------------------------------------------------- charges

    @route("GET", "/v1/charges/<ident>")
    def retrieve_charge(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("charge", ident, account=ctx.account)

    @route("POST", "/v1/charges/<ident>", params={"metadata", "description"})
    def update_charge(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        ch = self._get("charge", ident, account=ctx.account)
        if "metadata" in p:
            ch["metadata"] = p_metadata(p, ch["metadata"])
        if "description" in p:
            ch["description"] = p_str(p, "description")
        return ch

    @route("GET", "/v1/charges")
    def list_charges(self, ctx: Ctx, p: Obj) -> Obj:
        pi = p_str(p, "payment_intent")
        customer = p_str(p, "customer")
        tg = p_str(p, "transfer_group")

        def pred(o: Obj) -> bool:
            return ((pi is None or o["payment_intent"] == pi)
                    and (customer is None or o["customer"] == customer)
                    and (tg is None or o["transfer_group"] == tg))
        return self._list("charge", p, "/v1/charges", pred, ctx.account)
