"""Disputes of charges (a family of ``Sandbox``; see ``engine.py``)."""

from __future__ import annotations

from payments.sandbox import currency as cur
from payments.sandbox._payments import PaymentsMixin
from payments.sandbox.core import route
from payments.sandbox.model import (
    DAY,
    Ctx,
    Obj,
    invalid,
    p_bool,
    p_dict,
    p_metadata,
    p_str,
    template,
)


class DisputesMixin(PaymentsMixin):
    """Disputes: opened by the clock after a ``pm_card_createDispute`` charge, or a control."""

    # ---------------------------------------------------------------- disputes

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

    @route("GET", "/v1/disputes/<ident>")
    def retrieve_dispute(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("dispute", ident, account=ctx.account)

    @route("POST", "/v1/disputes/<ident>", params={"metadata", "evidence", "submit"})
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

    @route("POST", "/v1/disputes/<ident>/close", params=())
    def close_dispute_api(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        self._get("dispute", ident, account=ctx.account)
        return self.close_dispute(ident, "lost")

    @route("GET", "/v1/disputes")
    def list_disputes(self, ctx: Ctx, p: Obj) -> Obj:
        pi, ch = p_str(p, "payment_intent"), p_str(p, "charge")
        return self._list("dispute", p, "/v1/disputes",
                          lambda o: (pi is None or o["payment_intent"] == pi)
                          and (ch is None or o["charge"] == ch), ctx.account)
