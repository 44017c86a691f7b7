"""Refunds of charges (a family of ``Sandbox``; see ``engine.py``)."""

from __future__ import annotations

from payments.sandbox._payments import PaymentsMixin
from payments.sandbox.core import route
from payments.sandbox.model import (
    Ctx,
    Obj,
    _rand,
    invalid,
    p_int,
    p_metadata,
    p_str,
)


class RefundsMixin(PaymentsMixin):
    """Full and partial refunds; ``pm_card_refundFail`` refunds fail a moment later."""

    # ---------------------------------------------------------------- refunds

    @route("POST", "/v1/refunds",
           params={"payment_intent", "charge", "amount", "reason", "metadata",
                   "instructions_email"})
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

    @route("GET", "/v1/refunds/<ident>")
    def retrieve_refund(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("refund", ident, account=ctx.account)

    @route("POST", "/v1/refunds/<ident>", params={"metadata"})
    def update_refund(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        re = self._get("refund", ident, account=ctx.account)
        re["metadata"] = p_metadata(p, re["metadata"])
        return re

    @route("GET", "/v1/refunds")
    def list_refunds(self, ctx: Ctx, p: Obj) -> Obj:
        pi, ch = p_str(p, "payment_intent"), p_str(p, "charge")
        return self._list("refund", p, "/v1/refunds",
                          lambda o: (pi is None or o["payment_intent"] == pi)
                          and (ch is None or o["charge"] == ch), ctx.account)

    @route("GET", "/v1/charges/<ident>/refunds")
    def list_charge_refunds(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        self._get("charge", ident, account=ctx.account)
        return self._list("refund", p, f"/v1/charges/{ident}/refunds",
                          lambda o: o["charge"] == ident, ctx.account)
