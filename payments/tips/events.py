"""The Stripe events that move tips, and how each is applied (see ``payments.events``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.db import for_update, one_of
from payments.events import EventContext, EventRoutes, Route, expandable_id, kind_of, payment_routes
from payments.ledger import service as ledger
from payments.tips import service as tips
from payments.tips.models import Tip

KINDS = frozenset({"tip", "tip_refund"})


def _is_tip(obj: dict[str, Any]) -> bool:
    return kind_of(obj) == "tip"


def lock_tips(session: Session, objects: list[dict[str, Any]]) -> dict[str, Tip]:
    """Lock the batch's tips (named in the objects' metadata) with one query, in id order."""
    ids = sorted({str(o["metadata"]["tip_id"]) for o in objects
                  if _is_tip(o) and o["metadata"].get("tip_id")})
    if not ids:
        return {}
    stmt = select(Tip).where(one_of(session, Tip.public_id, ids)).order_by(Tip.id)
    return {tip.public_id: tip for tip in session.scalars(for_update(session, stmt))}


def _find_tip(session: Session, obj: dict[str, Any], ctx: EventContext) -> Tip | None:
    """``tips.find_tip``, answered from the batch's locked tips when it can be."""
    locked: dict[str, Tip] = ctx.loaded.get("tips") or {}
    found = locked.get(str(obj["metadata"].get("tip_id", ""))) if _is_tip(obj) else None
    return found if found is not None else tips.find_tip(session, obj)


def _require_tip(session: Session, obj: dict[str, Any], ctx: EventContext) -> Tip:
    tip = _find_tip(session, obj, ctx)
    if tip is None:
        raise LookupError(f"tip {obj['metadata'].get('tip_id')} of {obj.get('id')} not found")
    return tip


def _transaction(ctx: EventContext, obj: dict[str, Any]) -> dict[str, Any] | None:
    txn_id = expandable_id(obj.get("balance_transaction"))
    return ctx.stripe.balance_transaction(txn_id) if txn_id else None


def on_payment_intent(session: Session, intent: dict[str, Any], ctx: EventContext) -> None:
    if _is_tip(intent):
        tips.apply_payment_intent(session, _require_tip(session, intent, ctx), intent)


def on_charge_succeeded(session: Session, charge: dict[str, Any], ctx: EventContext) -> None:
    if not _is_tip(charge):
        return
    tip = _require_tip(session, charge, ctx)
    if not charge.get("captured"):
        return  # authorised only; the capture brings the balance transaction
    txn = _transaction(ctx, charge)
    if txn is not None:
        ctx.add(tips.charge_succeeded(session, tip, charge, txn, ctx.fee_rate))


def on_charge_refunded(session: Session, charge: dict[str, Any], ctx: EventContext) -> None:
    if not _is_tip(charge):
        return
    tip = _find_tip(session, charge, ctx)
    if tip is not None:
        tips.charge_refunded(session, tip, charge)


def _ensure_earning(session: Session, tip: Tip, charge_id: Any, ctx: EventContext) -> None:
    """Post the tip's earning first when a refund or dispute overtakes its charge's events.

    The take-back debits what is still pending for the tip; without the earning posted it
    would debit ``available`` instead, and the buckets would depend on delivery order. The
    charge event, when it comes, finds the same journals and writes nothing.
    """
    if tips.earning_posted(session, tip):
        return
    charge_id = expandable_id(charge_id) or tip.charge_id
    if not charge_id:
        raise LookupError(f"tip {tip.public_id}: no charge to post its earning from")
    charge = ctx.stripe.retrieve_charge(charge_id)
    txn = _transaction(ctx, charge) if charge.get("captured") else None
    if txn is None:
        raise LookupError(f"charge {charge_id} of tip {tip.public_id} is not captured")
    ledger.post_many(session, tips.charge_succeeded(session, tip, charge, txn, ctx.fee_rate))


def _charge_tip(session: Session, obj: dict[str, Any]) -> Tip | None:
    """The tip a refund or dispute belongs to, by its PaymentIntent or charge."""
    return tips.find_tip(session, {"payment_intent": obj.get("payment_intent"),
                                   "charge": obj.get("charge")})


def on_refund(session: Session, refund: dict[str, Any], ctx: EventContext) -> None:
    if refund.get("status") != "succeeded" or not refund.get("balance_transaction"):
        return  # pending or failed refunds move no money
    tip = _charge_tip(session, refund)
    if tip is None:
        return
    _ensure_earning(session, tip, refund.get("charge"), ctx)
    txn = _transaction(ctx, refund)
    assert txn is not None  # noqa: S101 - checked above
    tips.refund_settled(session, tip, refund, txn, ctx.fee_rate)


def on_dispute(session: Session, dispute: dict[str, Any], ctx: EventContext) -> None:
    tip = _charge_tip(session, dispute)
    if tip is None:
        return
    _ensure_earning(session, tip, dispute.get("charge"), ctx)
    tips.dispute_changed(session, tip, dispute)


_TRANSACTION_TYPES = frozenset({
    "charge.succeeded", "charge.captured", "refund.created", "refund.updated",
    "charge.refund.updated",
})


def transaction_ids(event_type: str, obj: dict[str, Any]) -> list[str]:
    """The balance transactions this domain's handler will ask for (for batch prefetch)."""
    txn = obj.get("balance_transaction")
    return [txn] if event_type in _TRANSACTION_TYPES and isinstance(txn, str) else []


EVENTS = EventRoutes(
    kinds=KINDS,
    routes={
        **payment_routes(on_payment_intent, on_charge_succeeded),
        "charge.refunded": Route(on_charge_refunded, own_kinds_only=True),
        "refund.created": Route(on_refund, reads_ledger=True),
        "refund.updated": Route(on_refund, reads_ledger=True),
        "charge.refund.updated": Route(on_refund, reads_ledger=True),
        "charge.dispute.created": Route(on_dispute, reads_ledger=True),
        "charge.dispute.updated": Route(on_dispute, reads_ledger=True),
        "charge.dispute.closed": Route(on_dispute, reads_ledger=True),
        "charge.dispute.funds_withdrawn": Route(on_dispute, reads_ledger=True),
        "charge.dispute.funds_reinstated": Route(on_dispute, reads_ledger=True),
    },
    prepare=lock_tips,
    transaction_ids=transaction_ids,
)
