"""Balance transactions and the balance (a family of ``Sandbox``; see ``engine.py``).

Every money movement (charge, refund, dispute, transfer, payout) writes a balance
transaction through :meth:`BalanceMixin._balance_txn`; the balance is their sum.
"""

from __future__ import annotations

from payments.sandbox.core import SandboxCore, route
from payments.sandbox.model import (
    Ctx,
    Obj,
    p_str,
    template,
)


class BalanceMixin(SandboxCore):
    """Balance transactions (fees, availability) and ``/v1/balance``."""

    # ---------------------------------------------------------------- balance transactions

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

    @route("GET", "/v1/balance_transactions/<ident>")
    def retrieve_balance_transaction(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("balance_transaction", ident, account=ctx.account)

    @route("GET", "/v1/balance_transactions")
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

    # ---------------------------------------------------------------- balance

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

    @route("GET", "/v1/balance")
    def retrieve_balance(self, ctx: Ctx, p: Obj) -> Obj:
        bal = self.balance_of(ctx.account) or {"usd": (0, 0)}
        obj = template("balance")
        obj["available"] = [{"amount": a, "currency": c, "source_types": {"card": a}}
                            for c, (a, _) in sorted(bal.items())]
        obj["pending"] = [{"amount": pnd, "currency": c, "source_types": {"card": pnd}}
                          for c, (_, pnd) in sorted(bal.items())]
        obj["connect_reserved"] = [{"amount": 0, "currency": c} for c in sorted(bal)]
        return obj
