"""Event type -> the domain service that applies it.

Each handler gets the session, the event's object and a ``HandlerContext`` that fetches
balance transactions (prefetched per batch) and collects journals for one ``post_many`` per
batch. Handlers must be idempotent on business keys and move state only forward: events come
duplicated, late and in any order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.orm import Session

from payments.ledger import service as ledger
from payments.tips import service as tips
from payments.tips.models import Tip


class BalanceSource(Protocol):
    def balance_transaction(self, txn_id: str) -> dict[str, Any]: ...

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]: ...


@dataclass
class HandlerContext:
    stripe: BalanceSource
    fee_rate: Decimal
    # Journals of the event being handled; the pipeline posts them with the batch.
    journals: list[ledger.JournalSpec] = field(default_factory=list)
    # Tips the pipeline already locked for the batch, by public id (one query per batch).
    tips: dict[str, Tip] = field(default_factory=dict)

    def add(self, specs: list[ledger.JournalSpec]) -> None:
        self.journals.extend(specs)

    def find_tip(self, session: Session, obj: dict[str, Any]) -> Tip | None:
        """``tips.find_tip``, answered from the batch's locked tips when it can be."""
        meta = obj.get("metadata")
        found = self.tips.get(meta.get("tip_id", "")) if isinstance(meta, dict) else None
        return found if found is not None else tips.find_tip(session, obj)


Handler = Callable[[Session, dict[str, Any], HandlerContext], None]


@dataclass(frozen=True)
class Route:
    handler: Handler
    # True when the handler reads ledger balances, so everything collected earlier in the
    # batch must be posted before it runs.
    reads_ledger: bool = False


def _is_tip(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata")
    return isinstance(meta, dict) and meta.get("creatorpay_kind") == "tip"


def on_payment_intent(session: Session, intent: dict[str, Any], ctx: HandlerContext) -> None:
    if not _is_tip(intent):
        return
    tip = ctx.find_tip(session, intent)
    if tip is None:
        raise LookupError(f"tip {intent['metadata'].get('tip_id')} of {intent['id']} not found")
    tips.apply_payment_intent(session, tip, intent)


def on_charge_succeeded(session: Session, charge: dict[str, Any], ctx: HandlerContext) -> None:
    if not _is_tip(charge):
        return
    tip = ctx.find_tip(session, charge)
    if tip is None:
        raise LookupError(f"tip {charge['metadata'].get('tip_id')} of {charge['id']} not found")
    if not charge.get("captured") or not charge.get("balance_transaction"):
        return  # authorised only; the capture brings the balance transaction
    txn_id = charge["balance_transaction"]
    txn = ctx.stripe.balance_transaction(txn_id if isinstance(txn_id, str) else txn_id["id"])
    ctx.add(tips.charge_succeeded(session, tip, charge, txn, ctx.fee_rate))


def on_charge_refunded(session: Session, charge: dict[str, Any], ctx: HandlerContext) -> None:
    if not _is_tip(charge):
        return
    tip = ctx.find_tip(session, charge)
    if tip is not None:
        tips.charge_refunded(session, tip, charge)


def _ensure_earning(session: Session, tip: Tip, charge_id: Any, ctx: HandlerContext) -> None:
    """Post the tip's earning first when a refund or dispute overtakes its charge's events.

    The take-back debits what is still pending for the tip; without the earning posted it
    would debit ``available`` instead, and the buckets would depend on delivery order. The
    charge event, when it comes, finds the same journals and writes nothing.
    """
    if tips.earning_posted(session, tip):
        return
    charge_id = charge_id["id"] if isinstance(charge_id, dict) else (charge_id or tip.charge_id)
    if not charge_id:
        raise LookupError(f"tip {tip.public_id}: no charge to post its earning from")
    charge = ctx.stripe.retrieve_charge(charge_id)
    if not charge.get("captured") or not charge.get("balance_transaction"):
        raise LookupError(f"charge {charge_id} of tip {tip.public_id} is not captured")
    txn_id = charge["balance_transaction"]
    txn = ctx.stripe.balance_transaction(txn_id if isinstance(txn_id, str) else txn_id["id"])
    ledger.post_many(session, tips.charge_succeeded(session, tip, charge, txn, ctx.fee_rate))


def on_refund(session: Session, refund: dict[str, Any], ctx: HandlerContext) -> None:
    if refund.get("status") != "succeeded" or not refund.get("balance_transaction"):
        return  # pending or failed refunds move no money
    tip = tips.find_tip(session, {"payment_intent": refund.get("payment_intent"),
                                  "charge": refund.get("charge")})
    if tip is None:
        return
    _ensure_earning(session, tip, refund.get("charge"), ctx)
    txn_id = refund["balance_transaction"]
    txn = ctx.stripe.balance_transaction(txn_id if isinstance(txn_id, str) else txn_id["id"])
    tips.refund_settled(session, tip, refund, txn, ctx.fee_rate)


def on_dispute(session: Session, dispute: dict[str, Any], ctx: HandlerContext) -> None:
    tip = tips.find_tip(session, {"payment_intent": dispute.get("payment_intent"),
                                  "charge": dispute.get("charge")})
    if tip is None:
        return
    _ensure_earning(session, tip, dispute.get("charge"), ctx)
    tips.dispute_changed(session, tip, dispute)


HANDLERS: dict[str, Route] = {
    "payment_intent.succeeded": Route(on_payment_intent),
    "payment_intent.processing": Route(on_payment_intent),
    "payment_intent.payment_failed": Route(on_payment_intent),
    "payment_intent.requires_action": Route(on_payment_intent),
    "payment_intent.canceled": Route(on_payment_intent),
    "charge.succeeded": Route(on_charge_succeeded),
    "charge.captured": Route(on_charge_succeeded),
    "charge.refunded": Route(on_charge_refunded),
    "refund.created": Route(on_refund, reads_ledger=True),
    "refund.updated": Route(on_refund, reads_ledger=True),
    "charge.refund.updated": Route(on_refund, reads_ledger=True),
    "charge.dispute.created": Route(on_dispute, reads_ledger=True),
    "charge.dispute.updated": Route(on_dispute, reads_ledger=True),
    "charge.dispute.closed": Route(on_dispute, reads_ledger=True),
    "charge.dispute.funds_withdrawn": Route(on_dispute, reads_ledger=True),
    "charge.dispute.funds_reinstated": Route(on_dispute, reads_ledger=True),
}

HANDLED_TYPES = frozenset(HANDLERS)


def balance_transaction_ids(event: dict[str, Any]) -> list[str]:
    """The balance transactions an event's handler will ask for (for batch prefetch)."""
    obj = event.get("data", {}).get("object", {})
    txn = obj.get("balance_transaction") if isinstance(obj, dict) else None
    if isinstance(txn, str) and event.get("type") in (
        "charge.succeeded", "charge.captured", "refund.created", "refund.updated",
        "charge.refund.updated",
    ):
        return [txn]
    return []
