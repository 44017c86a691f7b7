"""Connect for the sandbox: Express accounts, account links, transfers, reversals, payouts."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from payments.sandbox import currency as cur
from payments.sandbox._balance import BalanceMixin
from payments.sandbox.core import route
from payments.sandbox.model import (
    DAY,
    PAYOUT_ARRIVAL_DELAY,
    Ctx,
    Obj,
    _rand,
    invalid,
    missing,
    p_currency,
    p_dict,
    p_int,
    p_metadata,
    p_req,
    p_str,
    template,
)

COUNTRY_CURRENCY = {
    "US": "usd", "SG": "sgd", "JP": "jpy", "ID": "idr", "GB": "gbp", "AU": "aud", "CA": "cad",
    "NZ": "nzd", "HK": "hkd", "MY": "myr", "TH": "thb", "IN": "inr", "MX": "mxn", "BR": "brl",
    "CH": "chf", "SE": "sek", "NO": "nok", "DK": "dkk", "PL": "pln", "CZ": "czk", "KR": "krw",
    "PH": "php", "AE": "aed",
}
EURO = {"AT", "BE", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT", "LT", "LU", "LV",
        "MT", "NL", "PT", "SI", "SK"}


def _copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


class ConnectMixin(BalanceMixin):
    """Express accounts, account links, transfers and their reversals, payouts."""

    # ---------------------------------------------------------------- accounts

    @route("POST", "/v1/accounts",
           params={"type", "country", "email", "capabilities", "business_type", "metadata",
                   "controller", "business_profile", "default_currency", "settings",
                   "tos_acceptance", "individual"})
    def create_account(self, ctx: Ctx, p: Obj) -> Obj:
        acct_type = p_str(p, "type")
        controller = p_dict(p, "controller")
        if acct_type is None and not controller:
            acct_type = "standard"
        if acct_type not in (None, "express", "standard", "custom"):
            raise invalid(f"Invalid type: {acct_type}", "type")
        country = (p_str(p, "country") or "US").upper()
        if len(country) != 2:
            raise invalid(f"Invalid country: {country}", "country")
        default_currency = (p_str(p, "default_currency")
                            or ("eur" if country in EURO else COUNTRY_CURRENCY.get(country, "usd")))
        requested = {k for k, v in p_dict(p, "capabilities").items()
                     if isinstance(v, dict) and v.get("requested") == "true"}
        if not requested:
            requested = {"transfers"} if acct_type == "express" else {"card_payments",
                                                                      "transfers"}
        obj = template("account")
        acct_id = "acct_" + _rand(16)
        requirements = obj["requirements"]
        requirements["disabled_reason"] = "requirements.past_due"
        requirements["currently_due"] = ["external_account", "tos_acceptance.date",
                                         "tos_acceptance.ip", "individual.first_name"]
        requirements["eventually_due"] = list(requirements["currently_due"])
        requirements["past_due"] = list(requirements["currently_due"])
        bp = obj["business_profile"]
        bp.update({k: v for k, v in p_dict(p, "business_profile").items() if k in bp})
        obj.update({
            "id": acct_id, "object": "account", "business_profile": bp,
            "business_type": p_str(p, "business_type"),
            "capabilities": dict.fromkeys(sorted(requested), "inactive"),
            "charges_enabled": False,
            "controller": ({"type": "application", "is_controller": True,
                            "stripe_dashboard": {"type": "express"},
                            "requirement_collection": "stripe"}
                           if acct_type in ("express", None) else {"type": "account"}),
            "country": country, "created": self.now(), "default_currency": default_currency,
            "details_submitted": False, "email": p_str(p, "email"),
            "external_accounts": {"data": [], "has_more": False, "object": "list",
                                  "url": f"/v1/accounts/{acct_id}/external_accounts"},
            "metadata": p_metadata(p), "payouts_enabled": False, "requirements": requirements,
            "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
            "type": acct_type or "none",
        })
        obj["settings"]["dashboard"]["display_name"] = bp.get("name")
        schedule = p_dict(p_dict(p_dict(p, "settings"), "payouts"), "schedule")
        if schedule.get("interval"):
            obj["settings"]["payouts"]["schedule"]["interval"] = schedule["interval"]
        self._store(obj, None)
        self.internal[acct_id] = {"payout_failures": False, "auto_payout": False}
        return obj

    @route("GET", "/v1/accounts/<ident>")
    def retrieve_account(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("account", ident)

    @route("GET", "/v1/accounts")
    def list_accounts(self, ctx: Ctx, p: Obj) -> Obj:
        return self._list("account", p, "/v1/accounts", None, None)

    @route("POST", "/v1/accounts/<ident>",
           params={"metadata", "email", "business_profile", "settings", "capabilities"})
    def update_account(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        acct = self._get("account", ident)
        prev: Obj = {}
        if "metadata" in p:
            prev["metadata"] = acct["metadata"]
            acct["metadata"] = p_metadata(p, acct["metadata"])
        if "email" in p:
            prev["email"] = acct["email"]
            acct["email"] = p_str(p, "email")
        schedule = p_dict(p_dict(p_dict(p, "settings"), "payouts"), "schedule")
        if schedule.get("interval"):
            if schedule["interval"] not in ("manual", "daily", "weekly", "monthly"):
                raise invalid("Invalid interval", "settings[payouts][schedule][interval]")
            prev["settings"] = _copy(acct["settings"])
            acct["settings"]["payouts"]["schedule"]["interval"] = schedule["interval"]
        caps = p_dict(p, "capabilities")
        for k, v in caps.items():
            if isinstance(v, dict) and v.get("requested") == "true" and k not in acct[
                    "capabilities"]:
                prev.setdefault("capabilities", dict(acct["capabilities"]))
                acct["capabilities"][k] = "active" if acct["details_submitted"] else "inactive"
        self.emit("account.updated", acct, ctx, previous=prev, account=acct["id"])
        return acct

    def _onboard(self, acct: Obj) -> Obj:
        prev = {"capabilities": dict(acct["capabilities"]),
                "charges_enabled": acct["charges_enabled"],
                "payouts_enabled": acct["payouts_enabled"],
                "details_submitted": acct["details_submitted"],
                "requirements": _copy(acct["requirements"])}
        now = self.now()
        acct["capabilities"] = dict.fromkeys(acct["capabilities"], "active")
        acct["charges_enabled"] = "card_payments" in acct["capabilities"]
        acct["payouts_enabled"] = True
        acct["details_submitted"] = True
        for k in ("currently_due", "eventually_due", "past_due", "pending_verification"):
            acct["requirements"][k] = []
        acct["requirements"]["disabled_reason"] = None
        acct["tos_acceptance"] = {"date": now, "ip": "127.0.0.1", "user_agent": "sandbox"}
        if not acct["external_accounts"]["data"]:
            acct["external_accounts"]["data"].append({
                "id": "ba_" + _rand(), "object": "bank_account", "account": acct["id"],
                "account_holder_name": None, "account_holder_type": None,
                "account_type": None, "available_payout_methods": ["standard"],
                "bank_name": "STRIPE TEST BANK", "country": acct["country"],
                "currency": acct["default_currency"], "default_for_currency": True,
                "fingerprint": _rand(16), "last4": "6789", "metadata": {},
                "routing_number": "110000000", "status": "new"})
        self.emit("account.updated", acct, previous=prev, account=acct["id"])
        return acct

    def onboard_account(self, acct_id: str) -> Obj:
        """Complete onboarding (what the hosted flow behind an account link does)."""
        with self.lock:
            acct = self._get("account", acct_id)
            if acct["details_submitted"]:
                return acct
            return self._onboard(acct)

    @route("POST", "/v1/account_links",
           params={"account", "refresh_url", "return_url", "type", "collect", "collection_options"})
    def create_account_link(self, ctx: Ctx, p: Obj) -> Obj:
        acct = self._get("account", p_req(p, "account"), param="account")
        link_type = p_req(p, "type")
        if link_type not in ("account_onboarding", "account_update"):
            raise invalid(f"Invalid type: {link_type}", "type")
        return_url = p_str(p, "return_url")
        refresh_url = p_str(p, "refresh_url")
        if link_type == "account_onboarding" and (not return_url or not refresh_url):
            raise invalid("Missing required param: return_url.",
                          "return_url" if not return_url else "refresh_url", "parameter_missing")
        obj = template("account_link")
        obj.update({
            "created": self.now(), "expires_at": self.now() + 300, "object": "account_link",
            "url": f"{self.base_url}/_sandbox/onboard/{acct['id']}"
                   f"?return_url={quote(return_url or '', safe='')}"})
        return obj

    def set_payout_failures(self, acct_id: str, enabled: bool) -> None:
        with self.lock:
            self._get("account", acct_id)
            self.internal[acct_id]["payout_failures"] = enabled

    # ---------------------------------------------------------------- balance

    def fund_balance(self, amount: int, currency: str,
                     account: str | None = None) -> Obj:
        """Add available funds (a top-up) to the platform or a connected account."""
        with self.lock:
            if currency not in cur.SUPPORTED:
                raise invalid(f"Invalid currency: {currency}", "currency")
            return self._balance_txn(amount, currency, "topup", "tu_" + _rand(),
                                     description="Sandbox top-up", account=account)

    def _total_balance(self, account: str | None, currency: str) -> int:
        a, pnd = self.balance_of(account).get(currency, (0, 0))
        return a + pnd

    # ---------------------------------------------------------------- transfers

    @route("POST", "/v1/transfers",
           params={"amount", "currency", "destination", "metadata", "transfer_group", "description",
                   "source_transaction", "source_type"})
    def create_transfer(self, ctx: Ctx, p: Obj) -> Obj:
        amount = p_int(p, "amount", required=True, minimum=1)
        assert amount is not None
        currency = p_currency(p)
        acct = self._get("account", p_req(p, "destination"), param="destination",
                         label="destination")
        if acct["capabilities"].get("transfers") != "active" and acct["capabilities"].get(
                "crypto_transfers") != "active":
            raise invalid("Your destination account needs to have at least one of the "
                          "following capabilities enabled: transfers, crypto_transfers, "
                          "legacy_payments", "destination",
                          "insufficient_capabilities_for_transfer")
        source_tx = p_str(p, "source_transaction")
        if source_tx:
            ch = self._get("charge", source_tx, param="source_transaction")
            if not ch["captured"]:
                raise invalid("The source_transaction charge is not captured.",
                              "source_transaction")
        elif self._total_balance(ctx.account, currency) < amount:
            raise invalid("You have insufficient funds in your Stripe account for this "
                          "transfer. Your card balance is too low.", None, "balance_insufficient")
        tr_id = self._id("tr")
        py_id = "py_" + _rand()
        bt = self._balance_txn(-amount, currency, "transfer", tr_id,
                               description=p_str(p, "description"), account=ctx.account)
        tr = template("transfer")
        tr.update({
            "id": tr_id, "object": "transfer", "livemode": False, "created": self.now(),
            "amount": amount, "amount_reversed": 0, "balance_transaction": bt["id"],
            "currency": currency, "description": p_str(p, "description"),
            "destination": acct["id"], "destination_payment": py_id,
            "metadata": p_metadata(p),
            "reversals": {"data": [], "has_more": False, "object": "list",
                          "url": f"/v1/transfers/{tr_id}/reversals"},
            "reversed": False, "source_transaction": source_tx, "source_type": "card",
            "transfer_group": p_str(p, "transfer_group"),
        })
        self._store(tr, ctx.account)
        # the connected account's side: a payment (a charge with a py_ id) and its txn
        abt = self._balance_txn(amount, currency, "payment", py_id,
                                description=None, account=acct["id"])
        py = template("charge")
        py.update({
            "id": py_id, "object": "charge", "amount": amount, "amount_captured": amount,
            "amount_refunded": 0, "application": None, "application_fee": None,
            "application_fee_amount": None, "balance_transaction": abt["id"],
            "billing_details": {"address": None, "email": None, "name": None, "phone": None,
                                "tax_id": None},
            "calculated_statement_descriptor": None, "captured": True, "created": self.now(),
            "currency": currency, "customer": None, "description": None, "disputed": False,
            "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
            "fraud_details": {}, "livemode": False, "metadata": {}, "on_behalf_of": None,
            "outcome": None, "paid": True, "payment_intent": None, "payment_method": None,
            "payment_method_details": {"stripe_account": {}, "type": "stripe_account"},
            "receipt_email": None, "receipt_number": None, "receipt_url": None,
            "refunded": False,
            "refunds": {"data": [], "has_more": False, "object": "list",
                        "url": f"/v1/charges/{py_id}/refunds"},
            "review": None, "shipping": None, "source_transfer": tr_id,
            "statement_descriptor": None, "statement_descriptor_suffix": None,
            "status": "succeeded", "transfer_data": None,
            "transfer_group": tr["transfer_group"], "source": None,
        })
        self._store(py, acct["id"])
        self.emit("transfer.created", tr, ctx)
        self._maybe_schedule_auto_payout(acct)
        return tr

    @route("GET", "/v1/transfers/<ident>")
    def retrieve_transfer(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("transfer", ident, account=ctx.account)

    @route("POST", "/v1/transfers/<ident>", params={"metadata", "description"})
    def update_transfer(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        tr = self._get("transfer", ident, account=ctx.account)
        prev: Obj = {}
        if "metadata" in p:
            prev["metadata"] = tr["metadata"]
            tr["metadata"] = p_metadata(p, tr["metadata"])
        if "description" in p:
            prev["description"] = tr["description"]
            tr["description"] = p_str(p, "description")
        self.emit("transfer.updated", tr, ctx, previous=prev)
        return tr

    @route("GET", "/v1/transfers")
    def list_transfers(self, ctx: Ctx, p: Obj) -> Obj:
        dest, group = p_str(p, "destination"), p_str(p, "transfer_group")
        return self._list("transfer", p, "/v1/transfers",
                          lambda o: (dest is None or o["destination"] == dest)
                          and (group is None or o["transfer_group"] == group), ctx.account)

    @route("POST", "/v1/transfers/<ident>/reversals",
           params={"amount", "metadata", "description", "refund_application_fee"})
    def create_transfer_reversal(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        tr = self._get("transfer", ident, account=ctx.account)
        remaining = tr["amount"] - tr["amount_reversed"]
        amount = p_int(p, "amount", minimum=1)
        amount = remaining if amount is None else amount
        if remaining <= 0:
            raise invalid(f"Transfer {ident} has already been fully reversed.", None,
                          "transfer_already_reversed")
        if amount > remaining:
            raise invalid(f"Reversal amount ({amount}) is greater than the amount left on the "
                          f"transfer ({remaining}).", "amount", "amount_too_large")
        trr_id = self._id("trr")
        bt = self._balance_txn(amount, tr["currency"], "transfer_refund", trr_id,
                               description=p_str(p, "description"), account=ctx.account)
        pyr_id = "pyr_" + _rand()
        self._balance_txn(-amount, tr["currency"], "payment_refund", pyr_id,
                          account=tr["destination"])
        trr = template("transfer_reversal")
        trr.update({
            "id": trr_id, "object": "transfer_reversal", "amount": amount,
            "balance_transaction": bt["id"], "created": self.now(),
            "currency": tr["currency"], "destination_payment_refund": pyr_id,
            "metadata": p_metadata(p), "source_refund": None, "transfer": tr["id"],
        })
        self._store(trr, ctx.account)
        prev = {"amount_reversed": tr["amount_reversed"], "reversed": tr["reversed"],
                "reversals": _copy(tr["reversals"])}
        tr["amount_reversed"] += amount
        tr["reversed"] = tr["amount_reversed"] >= tr["amount"]
        tr["reversals"]["data"].insert(0, trr)
        self.emit("transfer.reversed", tr, ctx, previous=prev)
        self.emit("transfer.updated", tr, ctx, previous=prev)
        return trr

    @route("GET", "/v1/transfers/<ident>/reversals")
    def list_transfer_reversals(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        self._get("transfer", ident, account=ctx.account)
        return self._list("transfer_reversal", p, f"/v1/transfers/{ident}/reversals",
                          lambda o: o["transfer"] == ident, ctx.account)

    @route("GET", "/v1/transfers/<ident>/reversals/<rev>")
    def retrieve_transfer_reversal(self, ctx: Ctx, p: Obj, ident: str,
                                   rev: str) -> Obj:
        trr = self._get("transfer_reversal", rev, account=ctx.account)
        if trr["transfer"] != ident:
            raise missing("transfer_reversal", rev)
        return trr

    # ---------------------------------------------------------------- payouts

    def _maybe_schedule_auto_payout(self, acct: Obj) -> None:
        info = self.internal.setdefault(acct["id"], {})
        if (acct["settings"]["payouts"]["schedule"]["interval"] == "manual"
                or not acct["payouts_enabled"] or info.get("auto_payout")):
            return
        info["auto_payout"] = True
        now = self.now()
        self.schedule(now - now % DAY + DAY, "auto_payout", acct["id"])

    def _job_auto_payout(self, acct_id: str) -> None:
        acct = self.objects[acct_id]
        self.internal[acct_id]["auto_payout"] = False
        if acct["settings"]["payouts"]["schedule"]["interval"] == "manual":
            return
        for currency, (available, _pending) in sorted(self.balance_of(acct_id).items()):
            if available > 0:
                self._payout(Ctx(account=acct_id), acct_id, available, currency,
                             automatic=True, metadata={}, description="STRIPE PAYOUT")

    @route("POST", "/v1/payouts",
           params={"amount", "currency", "metadata", "description", "method", "destination",
                   "statement_descriptor"})
    def create_payout(self, ctx: Ctx, p: Obj) -> Obj:
        amount = p_int(p, "amount", required=True, minimum=1)
        assert amount is not None
        currency = p_currency(p)
        if ctx.account is not None:
            acct = self._get("account", ctx.account, param="stripe_account")
            if not acct["payouts_enabled"]:
                raise invalid("Payouts are not enabled for this account.", None,
                              "payouts_not_allowed")
        available, _ = self.balance_of(ctx.account).get(currency, (0, 0))
        if amount > available:
            raise invalid("You have insufficient funds in your Stripe account for this "
                          "payout.", "amount", "balance_insufficient")
        method = p_str(p, "method") or "standard"
        if method not in ("standard", "instant"):
            raise invalid(f"Invalid method: {method}", "method")
        return self._payout(ctx, ctx.account, amount, currency, automatic=False,
                            metadata=p_metadata(p), description=p_str(p, "description"),
                            method=method)

    def _payout(self, ctx: Ctx, account: str | None, amount: int, currency: str, *,
                automatic: bool, metadata: Obj, description: str | None,
                method: str = "standard") -> Obj:
        po_id = self._id("po")
        now = self.now()
        included = [bt["id"] for bt in self._iter("balance_transaction")
                    if self.owner.get(bt["id"]) == account and bt["currency"] == currency
                    and bt["available_on"] <= now and bt["type"] != "payout"
                    and not self.internal.get(bt["id"], {}).get("paid_out")]
        for bt_id in included:
            self.internal.setdefault(bt_id, {})["paid_out"] = po_id
        bt = self._balance_txn(-amount, currency, "payout", po_id, description=description,
                               account=account)
        destination = "ba_sandbox_platform"
        if account is not None:
            ext = self.objects[account]["external_accounts"]["data"]
            destination = ext[0]["id"] if ext else destination
        arrival = now + (1800 if method == "instant" else PAYOUT_ARRIVAL_DELAY)
        po = template("payout")
        po.update({
            "id": po_id, "object": "payout", "livemode": False, "created": now,
            "amount": amount, "application_fee": None, "application_fee_amount": None,
            "arrival_date": arrival, "automatic": automatic, "balance_transaction": bt["id"],
            "currency": currency, "description": description, "destination": destination,
            "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
            "metadata": metadata, "method": method, "original_payout": None,
            "reconciliation_status": "not_applicable" if not automatic else "in_progress",
            "reversed_by": None, "source_type": "card", "statement_descriptor": None,
            "status": "pending", "type": "bank_account",
            "trace_id": {"status": "pending", "value": None}, "payout_method": None,
        })
        self._store(po, account)
        self.internal[po_id] = {"txns": included + [bt["id"]]}
        self.emit("payout.created", po, ctx, account=account)
        self.schedule(min(now + 3600, arrival - 1), "payout_in_transit", po_id)
        self.schedule(arrival, "payout_arrive", po_id)
        return po

    def _job_payout_in_transit(self, po_id: str) -> None:
        po = self.objects[po_id]
        if po["status"] != "pending":
            return
        po["status"] = "in_transit"
        self.emit("payout.updated", po, previous={"status": "pending"},
                  account=self.owner.get(po_id))

    def _job_payout_arrive(self, po_id: str) -> None:
        po = self.objects[po_id]
        if po["status"] not in ("pending", "in_transit"):
            return
        account = self.owner.get(po_id)
        if account is not None and self.internal.get(account, {}).get("payout_failures"):
            self._fail(po, "account_closed")
            return
        prev = {"status": po["status"]}
        po["status"] = "paid"
        po["reconciliation_status"] = "completed"
        po["trace_id"] = {"status": "supported", "value": "SBX" + _rand(12).upper()}
        self.emit("payout.paid", po, previous=prev, account=account)
        self.emit("payout.updated", po, previous=prev, account=account)

    def _fail(self, po: Obj, code: str) -> None:
        account = self.owner.get(po["id"])
        bt = self._balance_txn(po["amount"], po["currency"], "payout_failure", po["id"],
                               description="Payout failure", account=account)
        prev = {"status": po["status"]}
        po["status"] = "failed"
        po["failure_code"] = code
        po["failure_message"] = "The bank account has been closed."
        po["failure_balance_transaction"] = bt["id"]
        self.emit("payout.failed", po, previous=prev, account=account)
        self.emit("payout.updated", po, previous=prev, account=account)

    def fail_payout(self, po_id: str, code: str = "account_closed") -> Obj:
        with self.lock:
            po = self._get("payout", po_id, account=False)
            if po["status"] not in ("pending", "in_transit"):
                raise invalid(f"Payout {po_id} has status {po['status']}.", None,
                              "payout_unexpected_state")
            self._fail(po, code)
            return po

    @route("GET", "/v1/payouts/<ident>")
    def retrieve_payout(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("payout", ident, account=ctx.account)

    @route("GET", "/v1/payouts")
    def list_payouts(self, ctx: Ctx, p: Obj) -> Obj:
        status = p_str(p, "status")
        return self._list("payout", p, "/v1/payouts",
                          (lambda o: o["status"] == status) if status else None, ctx.account)

