"""The Stripe events that move deals, and how each is applied (see ``payments.events``)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from payments.deals import service as deals
from payments.deals.models import Deal
from payments.events import EventContext, EventRoutes, Route, expandable_id, kind_of, payment_routes
from payments.ledger import service as ledger

log = logging.getLogger(__name__)

KINDS = frozenset({"deal", "deal_refund"})


def lock_deals(session: Session, objects: list[dict[str, Any]]) -> dict[str, Deal]:
    """Lock the batch's deals (named in the objects' metadata) with one query, in id order."""
    ids = [str(o["metadata"]["deal_id"]) for o in objects
           if kind_of(o) in KINDS and o["metadata"].get("deal_id")]
    return deals.lock_many(session, ids)


def _find(session: Session, obj: dict[str, Any], ctx: EventContext) -> Deal | None:
    locked: dict[str, Deal] = ctx.loaded.get("deals") or {}
    meta = obj.get("metadata") or {}
    found = locked.get(str(meta.get("deal_id", ""))) if kind_of(obj) in KINDS else None
    return found if found is not None else deals.find_deal(session, obj)


def _require(session: Session, obj: dict[str, Any], ctx: EventContext) -> Deal:
    deal = _find(session, obj, ctx)
    if deal is None:
        raise LookupError(f"deal {(obj.get('metadata') or {}).get('deal_id')} of "
                          f"{obj.get('id')} not found")
    return deal


def _transaction(ctx: EventContext, obj: dict[str, Any]) -> dict[str, Any] | None:
    txn_id = expandable_id(obj.get("balance_transaction"))
    return ctx.stripe.balance_transaction(txn_id) if txn_id else None


def on_payment_intent(session: Session, intent: dict[str, Any], ctx: EventContext) -> None:
    if kind_of(intent) == "deal":
        deals.apply_payment_intent(session, _require(session, intent, ctx), intent)


def on_charge_succeeded(session: Session, charge: dict[str, Any], ctx: EventContext) -> None:
    if kind_of(charge) != "deal":
        return
    deal = _require(session, charge, ctx)
    if not charge.get("captured"):
        return  # authorised only; the capture brings the balance transaction
    txn = _transaction(ctx, charge)
    if txn is not None:
        ctx.add(deals.funding_succeeded(session, deal, charge, txn))


def _ensure_funded(session: Session, deal: Deal, charge_id: Any, ctx: EventContext) -> None:
    """Book the funding first when a chargeback overtakes the funding charge's events."""
    if deal.escrow_funded or deals.funded_in_ledger(session, deal):
        return
    charge_id = expandable_id(charge_id) or deal.charge_id
    if not charge_id:
        raise LookupError(f"deal {deal.public_id}: no charge to book its funding from")
    charge = ctx.stripe.retrieve_charge(charge_id)
    txn = _transaction(ctx, charge) if charge.get("captured") else None
    if txn is None:
        raise LookupError(f"charge {charge_id} of deal {deal.public_id} is not captured")
    ledger.post_many(session, deals.funding_succeeded(session, deal, charge, txn))


def on_refund(session: Session, refund: dict[str, Any], ctx: EventContext) -> None:
    kind = kind_of(refund)
    if kind is not None and kind != "deal_refund":
        return
    row = deals.find_refund(session, refund)
    if row is None:
        if kind == "deal_refund":
            raise LookupError(f"deal refund {refund.get('id')} not found")
        return  # not ours (a tip's, or one made in the dashboard)
    deals.refund_settled(session, row, refund)


def on_dispute(session: Session, dispute: dict[str, Any], ctx: EventContext) -> None:
    deal = deals.find_deal(session, {"payment_intent": dispute.get("payment_intent"),
                                     "charge": dispute.get("charge")})
    if deal is None:
        return  # not a deal's payment
    _ensure_funded(session, deal, dispute.get("charge"), ctx)
    deals.chargeback(session, deal, dispute)


_TRANSACTION_TYPES = frozenset({"charge.succeeded", "charge.captured"})


def transaction_ids(event_type: str, obj: dict[str, Any]) -> list[str]:
    txn = obj.get("balance_transaction")
    return [txn] if event_type in _TRANSACTION_TYPES and isinstance(txn, str) else []


EVENTS = EventRoutes(
    kinds=KINDS,
    routes={
        **payment_routes(on_payment_intent, on_charge_succeeded),
        "refund.created": Route(on_refund, reads_ledger=True),
        "refund.updated": Route(on_refund, reads_ledger=True),
        "refund.failed": Route(on_refund, reads_ledger=True),
        "charge.refund.updated": Route(on_refund, reads_ledger=True),
        "charge.dispute.created": Route(on_dispute, reads_ledger=True),
        "charge.dispute.updated": Route(on_dispute, reads_ledger=True),
        "charge.dispute.closed": Route(on_dispute, reads_ledger=True),
        "charge.dispute.funds_withdrawn": Route(on_dispute, reads_ledger=True),
        "charge.dispute.funds_reinstated": Route(on_dispute, reads_ledger=True),
    },
    prepare=lock_deals,
    transaction_ids=transaction_ids,
)
