"""Subscriptions, invoices and invoice payments for the sandbox (a mixin of ``Sandbox``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from payments.sandbox import currency as cur
from payments.sandbox._payments import PaymentsMixin
from payments.sandbox._products import ProductsMixin
from payments.sandbox.core import _copy, route
from payments.sandbox.model import (
    INCOMPLETE_EXPIRY,
    INVOICE_LINE_TEMPLATE,
    INVOICE_RETRY_DELAYS,
    ApiError,
    Ctx,
    Obj,
    add_interval,
    invalid,
    missing,
    p_bool,
    p_int,
    p_list,
    p_metadata,
    p_req,
    p_str,
    template,
)

ACTIVE_LIKE = ("trialing", "active", "past_due", "unpaid", "incomplete")


class SubscriptionsMixin(PaymentsMixin, ProductsMixin):
    """Subscriptions (trials, renewals, retries, proration), invoices, invoice payments."""

    # What a subscription becomes after its last retry fails; ``/_sandbox/subscriptions/config``
    # sets it per sandbox, and ``reset()`` leaves it.
    subscription_final_status = "canceled"  # or "unpaid"

    # ---------------------------------------------------------------- helpers

    def _plan_of(self, price: Obj) -> Obj:
        rec = price["recurring"] or {}
        return {
            "active": price["active"], "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"], "billing_scheme": "per_unit",
            "created": price["created"], "currency": price["currency"], "id": price["id"],
            "interval": rec.get("interval"), "interval_count": rec.get("interval_count"),
            "livemode": False, "metadata": price["metadata"], "meter": None,
            "nickname": price["nickname"], "object": "plan", "product": price["product"],
            "tiers_mode": None, "transform_usage": None, "trial_period_days": None,
            "usage_type": "licensed",
        }

    def _item_obj(self, sub_id: str, price: Obj, qty: int, start: int,
                  end: int) -> Obj:
        item = template("subscription_item")
        item.update({
            "created": self.now(), "discounts": [], "id": self._id("si"), "metadata": {},
            "price": price, "quantity": qty, "subscription": sub_id, "tax_rates": [],
            "plan": self._plan_of(price), "current_period_start": start,
            "current_period_end": end, "billing_thresholds": None,
        })
        self.internal[item["id"]] = {"subscription": sub_id}
        self.objects[item["id"]] = item
        return item

    def _sub_pm(self, sub: Obj) -> str | None:
        if sub["default_payment_method"]:
            return str(sub["default_payment_method"])
        cus = self.objects.get(sub["customer"])
        if cus is None:
            return None
        pm = cus["invoice_settings"]["default_payment_method"]
        return str(pm) if pm else None

    def _line(self, inv_id: str, sub: Obj, item: Obj, price: Obj, amount: int,
              qty: int, start: int, end: int, description: str, proration: bool) -> Obj:
        line: Obj = orjson.loads(INVOICE_LINE_TEMPLATE)
        line.update({
            "amount": amount, "currency": price["currency"], "description": description,
            "discount_amounts": [], "discountable": not proration, "discounts": [],
            "id": self._id("il"), "invoice": inv_id, "livemode": False, "metadata": {},
            "period": {"end": end, "start": start}, "quantity": qty,
            "subscription": sub["id"], "pretax_credit_amounts": [], "taxes": [],
            "parent": {"invoice_item_details": None,
                       "subscription_item_details": {
                           "invoice_item": None, "proration": proration,
                           "proration_details": {"credited_items": None},
                           "subscription": sub["id"], "subscription_item": item["id"]},
                       "type": "subscription_item_details"},
            "pricing": {"price_details": {"price": price["id"], "product": price["product"]},
                        "type": "price_details",
                        "unit_amount_decimal": price["unit_amount_decimal"]},
            "subtotal": amount, "quantity_decimal": str(qty),
        })
        return line

    def _build_invoice(self, ctx: Ctx, sub: Obj, lines_spec: list[Obj],
                       reason: str, start: int, end: int) -> Obj:
        """Create, store and finalize an invoice for ``sub``; emits created and finalized."""
        cus = self.objects[sub["customer"]]
        inv_id = self._id("in")
        lines = [self._line(inv_id, sub, **spec) for spec in lines_spec]
        total = sum(line["amount"] for line in lines)
        inv = template("invoice")
        inv.update({
            "id": inv_id, "object": "invoice", "livemode": False, "created": self.now(),
            "account_country": "US", "account_name": "creatorpay sandbox",
            "account_tax_ids": None, "amount_due": total, "amount_paid": 0,
            "amount_remaining": total, "amount_shipping": 0, "application": None,
            "attempt_count": 0, "attempted": False, "auto_advance": True,
            "automatic_tax": {"enabled": False, "liability": None, "status": None,
                              "disabled_reason": None, "provider": None},
            "billing_reason": reason, "collection_method": "charge_automatically",
            "currency": sub["currency"], "custom_fields": None, "customer": cus["id"],
            "customer_address": None, "customer_email": cus["email"],
            "customer_name": cus["name"], "customer_phone": cus["phone"],
            "customer_shipping": None, "customer_tax_exempt": "none", "customer_tax_ids": [],
            "default_payment_method": None, "default_source": None, "default_tax_rates": [],
            "description": None, "discounts": [], "due_date": None, "effective_at": None,
            "ending_balance": None, "footer": None, "from_invoice": None,
            "hosted_invoice_url": f"{self.base_url}/_sandbox/invoices/{inv_id}",
            "invoice_pdf": f"{self.base_url}/_sandbox/invoices/{inv_id}/pdf",
            "issuer": {"type": "self"}, "last_finalization_error": None,
            "latest_revision": None,
            "lines": {"data": lines, "has_more": False, "object": "list",
                      "url": f"/v1/invoices/{inv_id}/lines"},
            "metadata": {}, "next_payment_attempt": None, "number": None,
            "on_behalf_of": None,
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": end, "period_start": start, "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0, "receipt_number": None, "rendering": None,
            "shipping_cost": None, "shipping_details": None,
            "starting_balance": cus["balance"], "statement_descriptor": None,
            "status": "draft",
            "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                                   "paid_at": None, "voided_at": None},
            "subscription": sub["id"], "subtotal": total, "subtotal_excluding_tax": total,
            "test_clock": None, "total": total, "total_discount_amounts": [],
            "total_excluding_tax": total, "webhooks_delivered_at": None,
            "automatically_finalizes_at": None, "total_pretax_credit_amounts": [],
            "total_taxes": [], "amount_overpaid": 0,
            "parent": {"quote_details": None,
                       "subscription_details": {"metadata": dict(sub["metadata"]),
                                                "subscription": sub["id"]},
                       "type": "subscription_details"},
            "customer_account": None,
        })
        self._store(inv, self.owner.get(sub["id"]))
        self.internal[inv_id] = {"payments": [], "pi": None}
        self.emit("invoice.created", inv, ctx)
        # finalize: apply the customer's credit balance
        balance = cus["balance"]
        after = total + balance
        inv["amount_due"] = max(0, after)
        inv["amount_remaining"] = inv["amount_due"]
        inv["ending_balance"] = min(0, after)
        if balance != min(0, after):
            cus["balance"] = min(0, after)
        cus["next_invoice_sequence"] += 1
        inv["number"] = f"{cus['invoice_prefix']}-{cus['next_invoice_sequence'] - 1:04d}"
        inv["status"] = "open"
        inv["effective_at"] = self.now()
        inv["status_transitions"]["finalized_at"] = self.now()
        self.emit("invoice.finalized", inv, ctx, previous={"status": "draft"})
        sub["latest_invoice"] = inv_id
        return inv

    def _attempt_invoice(self, ctx: Ctx, inv: Obj, *, off_session: bool,
                         pm_override: str | None = None, confirm: bool = True) -> None:
        """One payment attempt on an open invoice; success and failure handled here."""
        if inv["status"] != "open":
            return
        sub = self.objects[inv["subscription"]]
        if inv["amount_due"] == 0:
            self._invoice_paid(ctx, inv, None)
            return
        info = self.internal[inv["id"]]
        pm_id = pm_override or self._sub_pm(sub)
        pi: Obj
        if info["pi"] is None:
            desc = ("Subscription creation" if inv["billing_reason"] == "subscription_create"
                    else "Subscription update")
            pi = self.create_payment_intent(
                ctx, {"amount": str(inv["amount_due"]), "currency": inv["currency"],
                      "customer": sub["customer"], "description": desc},
                internal={"invoice": inv["id"]})
            info["pi"] = pi["id"]
            pay = template("invoice_payment")
            pay.update({"amount_paid": None, "amount_requested": inv["amount_due"],
                        "created": self.now(), "currency": inv["currency"],
                        "id": self._id("inpay"), "invoice": inv["id"], "is_default": True,
                        "livemode": False,
                        "payment": {"type": "payment_intent", "payment_intent": pi["id"]},
                        "status": "open",
                        "status_transitions": {"canceled_at": None, "paid_at": None}})
            self._store(pay, self.owner.get(inv["id"]))
            info["payments"].append(pay["id"])
        else:
            pi = self.objects[info["pi"]]
        if not confirm:
            return
        if pi["status"] == "succeeded":
            return
        if pi["status"] == "requires_action" and pm_id == pi["payment_method"]:
            return
        if pm_id is None:
            self._invoice_failed(ctx, inv)
            return
        pm = self.objects.get(pm_id)
        if pm is None:
            self._invoice_failed(ctx, inv)
            return
        pi["payment_method"] = pm_id
        pi["status"] = "requires_confirmation"
        try:
            self._confirm(ctx, pi, off_session=off_session)
        except ApiError:
            self._invoice_failed(ctx, inv)
            return
        if pi["status"] == "requires_action":
            inv["attempted"] = True
            inv["attempt_count"] += 1
            self.emit("invoice.payment_action_required", inv, ctx)

    def _invoice_paid(self, ctx: Ctx, inv: Obj, pi: Obj | None) -> None:
        if inv["status"] == "paid":
            return
        now = self.now()
        prev = {"status": inv["status"], "amount_paid": inv["amount_paid"],
                "amount_remaining": inv["amount_remaining"]}
        inv["status"] = "paid"
        inv["amount_paid"] = inv["amount_due"]
        inv["amount_remaining"] = 0
        inv["attempted"] = True
        if pi is not None:
            inv["attempt_count"] += 1
        inv["next_payment_attempt"] = None
        inv["status_transitions"]["paid_at"] = now
        for pay_id in self.internal[inv["id"]]["payments"]:
            pay = self.objects[pay_id]
            pay["status"] = "paid"
            pay["amount_paid"] = inv["amount_paid"]
            pay["status_transitions"]["paid_at"] = now
        self.emit("invoice.paid", inv, ctx, previous=prev)
        self.emit("invoice.payment_succeeded", inv, ctx, previous=prev)
        sub = self.objects[inv["subscription"]]
        if sub["status"] in ("incomplete", "past_due", "unpaid"):
            sprev = {"status": sub["status"]}
            sub["status"] = "active"
            if not self.internal[sub["id"]].get("creating"):
                self.emit("customer.subscription.updated", sub, ctx, previous=sprev)

    def _invoice_failed(self, ctx: Ctx, inv: Obj) -> None:
        sub = self.objects[inv["subscription"]]
        inv["attempted"] = True
        inv["attempt_count"] += 1
        creating = inv["billing_reason"] == "subscription_create"
        retry_index = inv["attempt_count"] - 1
        if creating:
            inv["next_payment_attempt"] = None
        elif retry_index < len(INVOICE_RETRY_DELAYS):
            due = self.now() + INVOICE_RETRY_DELAYS[retry_index]
            inv["next_payment_attempt"] = due
            self.schedule(due, "invoice_retry", inv["id"])
        else:
            inv["next_payment_attempt"] = None
        self.emit("invoice.payment_failed", inv, ctx)
        sprev = {"status": sub["status"]}
        if creating:
            if sub["status"] != "incomplete":
                sub["status"] = "incomplete"
            return
        if inv["next_payment_attempt"] is None:
            # retries exhausted
            if self.subscription_final_status == "unpaid":
                if sub["status"] != "unpaid":
                    sub["status"] = "unpaid"
                    self.emit("customer.subscription.updated", sub, ctx, previous=sprev)
            else:
                self._end_subscription(ctx, sub, reason="payment_failed")
            return
        if sub["status"] in ("active", "trialing"):
            sub["status"] = "past_due"
            self.emit("customer.subscription.updated", sub, ctx, previous=sprev)

    def _end_subscription(self, ctx: Ctx, sub: Obj, *, reason: str) -> None:
        if sub["status"] in ("canceled", "incomplete_expired"):
            return
        now = self.now()
        sub["status"] = "canceled"
        sub["canceled_at"] = sub["canceled_at"] or now
        sub["ended_at"] = now
        sub["cancellation_details"]["reason"] = reason
        self.emit("customer.subscription.deleted", sub, ctx)

    def _advance_period(self, sub: Obj) -> tuple[int, int]:
        item = sub["items"]["data"][0]
        rec = item["price"]["recurring"]
        start = item["current_period_end"]
        anchor_day = self.internal[sub["id"]].get("anchor_day")
        end = add_interval(start, rec["interval"], rec["interval_count"], anchor_day)
        for it in sub["items"]["data"]:
            it["current_period_start"] = start
            it["current_period_end"] = end
        return start, end

    def _after_pi_success(self, ctx: Ctx, pi: Obj) -> None:
        inv_id = self.internal.get(pi["id"], {}).get("invoice")
        if inv_id and pi["status"] == "succeeded":
            self._invoice_paid(ctx, self.objects[inv_id], pi)

    # ---------------------------------------------------------------- jobs

    def _job_renew(self, sub_id: str, period_end: int) -> None:
        sub = self.objects[sub_id]
        items = sub["items"]["data"]
        if sub["status"] not in ACTIVE_LIKE or sub["status"] == "incomplete":
            return
        if items[0]["current_period_end"] != period_end:
            return  # superseded by a billing-cycle reset
        ctx = Ctx()
        if sub["cancel_at_period_end"]:
            self._end_subscription(ctx, sub, reason="cancellation_requested")
            return
        prev: Obj = {"items": _copy(sub["items"]), "latest_invoice": sub["latest_invoice"]}
        if sub["status"] == "trialing":
            prev["status"] = "trialing"
            sub["status"] = "active"
        start, end = self._advance_period(sub)
        specs = []
        for it in items:
            price = it["price"]
            product = self.objects.get(price["product"], {})
            specs.append({"item": it, "price": price,
                          "amount": price["unit_amount"] * it["quantity"], "qty": it["quantity"],
                          "start": start, "end": end,
                          "description": f"{it['quantity']} × {product.get('name', 'item')}",
                          "proration": False})
        specs.extend(self.internal[sub_id].pop("pending_lines", []))
        inv = self._build_invoice(ctx, sub, specs, "subscription_cycle", start, end)
        self.emit("customer.subscription.updated", sub, ctx, previous=prev)
        self.schedule(end, "renew", sub_id, end)
        self._attempt_invoice(ctx, inv, off_session=True)

    def _job_invoice_retry(self, inv_id: str) -> None:
        inv = self.objects[inv_id]
        sub = self.objects[inv["subscription"]]
        if inv["status"] != "open" or sub["status"] in ("canceled", "incomplete_expired"):
            return
        if inv["next_payment_attempt"] is None or inv["next_payment_attempt"] > self.now():
            return
        self._attempt_invoice(Ctx(), inv, off_session=True)

    def _job_incomplete_expire(self, sub_id: str) -> None:
        sub = self.objects[sub_id]
        if sub["status"] != "incomplete":
            return
        prev = {"status": "incomplete"}
        sub["status"] = "incomplete_expired"
        sub["ended_at"] = self.now()
        inv = self.objects.get(sub["latest_invoice"] or "")
        if inv is not None and inv["status"] == "open":
            inv["status"] = "void"
            inv["status_transitions"]["voided_at"] = self.now()
            self.emit("invoice.voided", inv, previous={"status": "open"})
        self.emit("customer.subscription.updated", sub, previous=prev)

    # ---------------------------------------------------------------- API

    @route("POST", "/v1/subscriptions",
           params={"customer", "items", "default_payment_method", "trial_period_days", "trial_end",
                   "metadata", "payment_behavior", "proration_behavior", "cancel_at_period_end",
                   "collection_method", "description", "off_session", "payment_settings",
                   "transfer_data", "application_fee_percent"})
    def create_subscription(self, ctx: Ctx, p: Obj) -> Obj:
        cus = self._get("customer", p_req(p, "customer"), param="customer")
        raw_items = p_list(p, "items")
        if not raw_items:
            raise invalid("Missing required param: items.", "items", "parameter_missing")
        prices: list[tuple[Obj, int]] = []
        for i, it in enumerate(raw_items):
            if not isinstance(it, dict):
                raise invalid("Invalid items", f"items[{i}]")
            price = self._get("price", p_str(it, "price", required=True),
                              param=f"items[{i}][price]")
            if price["type"] != "recurring":
                raise invalid("The price specified is set to `type=one_time` but this field "
                              "only accepts prices with `type=recurring`.", f"items[{i}][price]")
            if not price["active"]:
                raise invalid("The price specified is inactive.", f"items[{i}][price]")
            qty = p_int(it, "quantity", minimum=1) or 1
            prices.append((price, qty))
        first = prices[0][0]
        for price, _ in prices[1:]:
            if (price["currency"], price["recurring"]["interval"]) != (
                    first["currency"], first["recurring"]["interval"]):
                raise invalid("All prices on a subscription must have the same currency and "
                              "interval.", "items")
        behavior = p_str(p, "payment_behavior") or "allow_incomplete"
        if behavior not in ("allow_incomplete", "error_if_incomplete", "default_incomplete",
                            "pending_if_incomplete"):
            raise invalid(f"Invalid payment_behavior: {behavior}", "payment_behavior")
        pm_id = p_str(p, "default_payment_method")
        if pm_id:
            pm = self._get("payment_method", pm_id, param="default_payment_method",
                           label="PaymentMethod")
            if pm["customer"] != cus["id"]:
                raise invalid(f"The customer does not have a payment method with the ID "
                              f"{pm_id}. The payment method must be attached to the customer.",
                              "default_payment_method", "resource_missing")
        now = self.now()
        trial_days = p_int(p, "trial_period_days", minimum=0)
        trial_end_raw = p_str(p, "trial_end")
        trial_end: int | None = None
        if trial_days:
            trial_end = now + trial_days * 86400
        elif trial_end_raw and trial_end_raw != "now":
            trial_end = p_int(p, "trial_end")
            if trial_end is not None and trial_end <= now:
                raise invalid("trial_end must be in the future.", "trial_end")
        rec = first["recurring"]
        start = now
        end = trial_end or add_interval(now, rec["interval"], rec["interval_count"])
        sub_id = self._id("sub")
        sub = template("subscription")
        items = [self._item_obj(sub_id, price, qty, start, end) for price, qty in prices]
        sub.update({
            "id": sub_id, "object": "subscription", "livemode": False, "created": now,
            "application": None, "application_fee_percent": None,
            "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
            "billing_cycle_anchor": end if trial_end else now,
            "billing_cycle_anchor_config": None, "cancel_at": None, "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically", "currency": first["currency"],
            "customer": cus["id"], "days_until_due": None, "default_payment_method": pm_id,
            "default_source": None, "default_tax_rates": [],
            "description": p_str(p, "description"), "discounts": [], "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"},
                                 "custom_fields": None, "description": None, "footer": None},
            "items": {"data": items, "has_more": False, "object": "list",
                      "url": f"/v1/subscription_items?subscription={sub_id}"},
            "latest_invoice": None, "metadata": p_metadata(p),
            "next_pending_invoice_item_invoice": None, "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                                 "save_default_payment_method": "off"},
            "pending_invoice_item_interval": None, "pending_setup_intent": None,
            "pending_update": None, "schedule": None, "start_date": now,
            "status": "trialing" if trial_end else "incomplete", "test_clock": None,
            "transfer_data": None, "trial_end": trial_end,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": now if trial_end else None,
            "cancel_at_period_end": p_bool(p, "cancel_at_period_end"),
            "billing_thresholds": None, "billing_mode": {"type": "classic", "flexible": None},
            "customer_account": None, "managed_payments": None, "billing_schedules": [],
        })
        if not trial_end and behavior != "default_incomplete" and not (
                pm_id or cus["invoice_settings"]["default_payment_method"]):
            total = sum(price["unit_amount"] * qty for price, qty in prices)
            if total > 0:
                raise invalid("This customer has no attached payment source or default "
                              "payment method. Please consider adding a default payment "
                              "method.", None, "resource_missing")
        self._store(sub, ctx.account)
        self.internal[sub_id] = {"creating": True,
                                 "anchor_day": None if rec["interval"] in ("day", "week")
                                 else _day_of(end)}
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = end
        self.hold_events()
        try:
            specs = []
            for it in items:
                price, qty = it["price"], it["quantity"]
                product = self.objects.get(price["product"], {})
                amount = 0 if trial_end else price["unit_amount"] * qty
                desc = (f"Trial period for {product.get('name', 'item')}" if trial_end
                        else f"{qty} × {product.get('name', 'item')}")
                specs.append({"item": it, "price": price, "amount": amount, "qty": qty,
                              "start": start, "end": end, "description": desc,
                              "proration": False})
            inv = self._build_invoice(ctx, sub, specs, "subscription_create", start, end)
            if behavior != "default_incomplete" or inv["amount_due"] == 0:
                self._attempt_invoice(ctx, inv, off_session=p_bool(p, "off_session"))
            elif inv["amount_due"] > 0:
                # create the PaymentIntent for client-side confirmation
                self._attempt_invoice(ctx, inv, off_session=False, confirm=False)
        except BaseException:
            self.take_events()
            raise
        finally:
            self.internal[sub_id]["creating"] = False
        buffered = self.take_events()
        if sub["status"] == "incomplete" and behavior == "error_if_incomplete":
            pi = self.objects.get(self.internal[inv["id"]]["pi"] or "")
            err = (pi or {}).get("last_payment_error") or {}
            sub["status"] = "incomplete_expired"
            sub["ended_at"] = now
            raise ApiError(402, "card_error", err.get("message", "Your card was declined."),
                           code=err.get("code", "card_declined"),
                           decline_code=err.get("decline_code"))
        if inv["status"] == "paid" and sub["status"] == "incomplete":
            sub["status"] = "active"
        self.emit("customer.subscription.created", sub, ctx)
        for ev in buffered:
            self._deliver(ev)
        if sub["status"] == "incomplete":
            self.schedule(now + INCOMPLETE_EXPIRY, "incomplete_expire", sub_id)
        self.schedule(end, "renew", sub_id, end)
        return sub

    @route("GET", "/v1/subscriptions/<ident>")
    def retrieve_subscription(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("subscription", ident, account=ctx.account)

    @route("GET", "/v1/subscription_items/<ident>")
    def retrieve_subscription_item(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        item = self.objects.get(ident)
        if item is None or item.get("object") != "subscription_item":
            raise missing("subscription_item", ident)
        return item

    @route("GET", "/v1/subscriptions")
    def list_subscriptions(self, ctx: Ctx, p: Obj) -> Obj:
        customer, price, status = p_str(p, "customer"), p_str(p, "price"), p_str(p, "status")

        def pred(o: Obj) -> bool:
            if customer and o["customer"] != customer:
                return False
            if price and all(it["price"]["id"] != price for it in o["items"]["data"]):
                return False
            if status in (None, ""):
                return bool(o["status"] not in ("canceled", "incomplete_expired"))
            return status == "all" or o["status"] == status
        return self._list("subscription", p, "/v1/subscriptions", pred, ctx.account)

    @route("POST", "/v1/subscriptions/<ident>",
           params={"cancel_at_period_end", "items", "proration_behavior", "proration_date",
                   "default_payment_method", "metadata", "payment_behavior", "trial_end",
                   "description", "off_session", "cancellation_details"})
    def update_subscription(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        sub = self._get("subscription", ident, account=ctx.account)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid("A canceled subscription can only update its cancellation_details "
                          "and metadata.", None, "resource_missing")
        prev: Obj = {}
        if "metadata" in p:
            prev["metadata"] = sub["metadata"]
            sub["metadata"] = p_metadata(p, sub["metadata"])
        if "cancel_at_period_end" in p:
            value = p_bool(p, "cancel_at_period_end")
            if value != sub["cancel_at_period_end"]:
                prev["cancel_at_period_end"] = sub["cancel_at_period_end"]
                prev["cancel_at"] = sub["cancel_at"]
                prev["canceled_at"] = sub["canceled_at"]
                sub["cancel_at_period_end"] = value
                end = sub["items"]["data"][0]["current_period_end"]
                sub["cancel_at"] = end if value else None
                sub["canceled_at"] = self.now() if value else None
                sub["cancellation_details"]["reason"] = (
                    "cancellation_requested" if value else None)
        if "default_payment_method" in p:
            pm_id = p_str(p, "default_payment_method")
            if pm_id:
                pm = self._get("payment_method", pm_id, param="default_payment_method",
                               label="PaymentMethod")
                if pm["customer"] != sub["customer"]:
                    raise invalid("The payment method must be attached to the customer.",
                                  "default_payment_method", "resource_missing")
            prev["default_payment_method"] = sub["default_payment_method"]
            sub["default_payment_method"] = pm_id
        invoice: Obj | None = None
        raw_items = p_list(p, "items")
        if raw_items:
            behavior = p_str(p, "proration_behavior") or "create_prorations"
            if behavior not in ("create_prorations", "always_invoice", "none"):
                raise invalid(f"Invalid proration_behavior: {behavior}", "proration_behavior")
            invoice = self._change_items(ctx, sub, raw_items, behavior, prev,
                                         p_int(p, "proration_date"))
        self.emit("customer.subscription.updated", sub, ctx, previous=prev)
        if invoice is not None:
            self._attempt_invoice(ctx, invoice, off_session=True)
        return sub

    def _change_items(self, ctx: Ctx, sub: Obj, raw_items: list[Any], behavior: str,
                      prev: Obj, proration_date: int | None) -> Obj | None:
        prev["items"] = _copy(sub["items"])
        now = proration_date or self.now()
        current = {it["id"]: it for it in sub["items"]["data"]}
        credit_specs: list[Obj] = []
        debit_specs: list[Obj] = []
        reset = False
        for i, raw in enumerate(raw_items):
            if not isinstance(raw, dict):
                raise invalid("Invalid items", f"items[{i}]")
            item_id = p_str(raw, "id")
            if not item_id or item_id not in current:
                raise invalid("The sandbox changes existing items only: pass items[][id].",
                              f"items[{i}][id]", "resource_missing")
            item = current[item_id]
            old_price, old_qty = item["price"], item["quantity"]
            new_price = old_price
            if raw.get("price"):
                new_price = self._get("price", str(raw["price"]), param=f"items[{i}][price]")
                if new_price["type"] != "recurring":
                    raise invalid("Price must be recurring.", f"items[{i}][price]")
                if new_price["currency"] != sub["currency"]:
                    raise invalid("Cannot change currency.", f"items[{i}][price]")
            new_qty = p_int(raw, "quantity", minimum=1) or old_qty
            if new_price["recurring"]["interval"] != old_price["recurring"]["interval"] or (
                    new_price["recurring"]["interval_count"]
                    != old_price["recurring"]["interval_count"]):
                reset = True
            start, end = item["current_period_start"], item["current_period_end"]
            remaining, total = max(0, end - now), max(1, end - start)
            old_name = self.objects.get(old_price["product"], {}).get("name", "item")
            new_name = self.objects.get(new_price["product"], {}).get("name", "item")
            if sub["status"] != "trialing" and behavior != "none":
                credit = -cur.prorate(old_price["unit_amount"] * old_qty, remaining, total)
                if credit:
                    credit_specs.append({
                        "item": item, "price": old_price, "amount": credit, "qty": old_qty,
                        "start": now, "end": end,
                        "description": f"Unused time on {old_qty} × {old_name}",
                        "proration": True})
                if not reset:
                    debit = cur.prorate(new_price["unit_amount"] * new_qty, remaining, total)
                    if debit:
                        debit_specs.append({
                            "item": item, "price": new_price, "amount": debit, "qty": new_qty,
                            "start": now, "end": end,
                            "description": f"Remaining time on {new_qty} × {new_name}",
                            "proration": True})
            item["price"] = new_price
            item["plan"] = self._plan_of(new_price)
            item["quantity"] = new_qty
        specs = credit_specs + debit_specs
        if sub["status"] == "trialing":
            return None
        if reset:
            rec = sub["items"]["data"][0]["price"]["recurring"]
            end = add_interval(now, rec["interval"], rec["interval_count"])
            for it in sub["items"]["data"]:
                it["current_period_start"] = now
                it["current_period_end"] = end
                product = self.objects.get(it["price"]["product"], {})
                specs.append({"item": it, "price": it["price"],
                              "amount": it["price"]["unit_amount"] * it["quantity"],
                              "qty": it["quantity"], "start": now, "end": end,
                              "description": f"{it['quantity']} × {product.get('name', 'item')}",
                              "proration": False})
            sub["billing_cycle_anchor"] = now
            self.internal[sub["id"]]["anchor_day"] = _day_of(end)
            specs.extend(self.internal[sub["id"]].pop("pending_lines", []))
            self.schedule(end, "renew", sub["id"], end)
            prev["latest_invoice"] = sub["latest_invoice"]
            return self._build_invoice(ctx, sub, specs, "subscription_update", now, end)
        if not specs:
            return None
        if behavior == "always_invoice":
            prev["latest_invoice"] = sub["latest_invoice"]
            specs.extend(self.internal[sub["id"]].pop("pending_lines", []))
            end = sub["items"]["data"][0]["current_period_end"]
            return self._build_invoice(ctx, sub, specs, "subscription_update", now, end)
        self.internal[sub["id"]].setdefault("pending_lines", []).extend(specs)
        return None

    @route("DELETE", "/v1/subscriptions/<ident>",
           params={"invoice_now", "prorate", "cancellation_details"})
    def cancel_subscription(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        sub = self._get("subscription", ident, account=ctx.account)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid(f"No such subscription: '{ident}'; it has already been canceled.",
                          "id", "resource_missing")
        sub["canceled_at"] = self.now()
        self._end_subscription(ctx, sub, reason="cancellation_requested")
        return sub

    @route("GET", "/v1/invoices/<ident>")
    def retrieve_invoice(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("invoice", ident, account=ctx.account)

    @route("GET", "/v1/invoices")
    def list_invoices(self, ctx: Ctx, p: Obj) -> Obj:
        customer, sub, status = p_str(p, "customer"), p_str(p, "subscription"), p_str(p, "status")
        return self._list(
            "invoice", p, "/v1/invoices",
            lambda o: (customer is None or o["customer"] == customer)
            and (sub is None or o["subscription"] == sub)
            and (status is None or o["status"] == status), ctx.account)

    @route("POST", "/v1/invoices/<ident>/pay",
           params={"payment_method", "off_session", "paid_out_of_band"})
    def pay_invoice(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        inv = self._get("invoice", ident, account=ctx.account)
        if inv["status"] != "open":
            raise invalid(f"Invoice is already {inv['status']}.", None,
                          "invoice_not_open" if inv["status"] != "paid" else "invoice_already_paid")
        if p_bool(p, "paid_out_of_band"):
            self._invoice_paid(ctx, inv, None)
            return inv
        pm_id = p_str(p, "payment_method")
        if pm_id:
            self._get("payment_method", pm_id, param="payment_method", label="PaymentMethod")
        before = inv["attempt_count"]
        self._attempt_invoice(ctx, inv, off_session=p_bool(p, "off_session", True),
                              pm_override=pm_id)
        if inv["status"] != "paid" and inv["attempt_count"] > before:
            pi = self.objects.get(self.internal[inv["id"]]["pi"] or "")
            err = (pi or {}).get("last_payment_error") or {}
            raise ApiError(402, "card_error", err.get("message", "Your card was declined."),
                           code=err.get("code", "card_declined"),
                           decline_code=err.get("decline_code"))
        return inv

    @route("GET", "/v1/invoice_payments/<ident>")
    def retrieve_invoice_payment(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("invoice_payment", ident, account=ctx.account)

    @route("GET", "/v1/invoice_payments")
    def list_invoice_payments(self, ctx: Ctx, p: Obj) -> Obj:
        inv = p_str(p, "invoice")
        payment = p.get("payment") if isinstance(p.get("payment"), dict) else {}
        pi = payment.get("payment_intent") if isinstance(payment, dict) else None
        if inv is not None and pi is None and not p.get("starting_after") \
                and not p.get("ending_before") and not p.get("created") \
                and not p.get("status"):
            # One invoice's payments (what a webhook handler asks per paid invoice): from the
            # invoice's own list, not a scan of every payment.
            limit = p_int(p, "limit")
            limit = 10 if limit is None else limit
            if not 1 <= limit <= 100:
                raise invalid("This value must be between 1 and 100.", "limit")
            ids = self.internal.get(inv, {}).get("payments", [])
            found = [self.objects[i] for i in reversed(ids)
                     if self.owner.get(i) == ctx.account]
            return {"object": "list", "data": found[:limit], "has_more": len(found) > limit,
                    "url": "/v1/invoice_payments"}
        status = p_str(p, "status")
        return self._list(
            "invoice_payment", p, "/v1/invoice_payments",
            lambda o: (inv is None or o["invoice"] == inv)
            and (pi is None or o["payment"].get("payment_intent") == pi)
            and (status is None or o["status"] == status), ctx.account)


def _day_of(ts: int) -> int:
    return datetime.fromtimestamp(ts, UTC).day

