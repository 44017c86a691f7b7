"""The Stripe events that move subscriptions, and how each is applied (``payments.events``).

Subscriptions we create carry ``metadata.creatorpay_kind="subscription"`` and our public id;
their invoices carry the same metadata under ``parent.subscription_details`` (and Stripe's
subscription id there, or as ``subscription`` in older API versions), which is how an
invoice leads back to its subscription. Invoices have no kind of their own, so every domain
handling ``invoice.*`` sees them; only this one does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.db import for_update, one_of
from payments.events import EventContext, EventRoutes, Route, expandable_id, kind_of, stripe_int
from payments.ledger import service as ledger
from payments.subscriptions import service
from payments.subscriptions.models import Subscription, SubscriptionInvoice

log = logging.getLogger(__name__)

KINDS = frozenset({"subscription", "subscription_refund"})
DOMAIN = "subscriptions"


def _public_id(obj: dict[str, Any]) -> str | None:
    """Our subscription's public id, from a subscription or an invoice object."""
    if obj.get("object") == "invoice":
        return service.invoice_subscription_ref(obj)[0]
    if kind_of(obj) == "subscription":
        value = (obj.get("metadata") or {}).get("subscription_id")
        return str(value) if value else None
    return None


@dataclass
class Loaded:
    """A batch's subscriptions (by public id) and invoices (by Stripe id), locked; and the
    subscriptions another worker's batch held (``prepare_skipping``)."""

    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    invoices: dict[str, SubscriptionInvoice] = field(default_factory=dict)
    held: frozenset[str] = frozenset()


def prepare(session: Session, objects: list[dict[str, Any]], *,
            skip_locked: bool = False) -> Loaded:
    """Lock the batch's subscriptions (named by their objects), then its invoices we have,
    one query each, in id order. ``skip_locked``: subscriptions another transaction holds
    are left out (and named in ``held``), with their invoices."""
    ids = sorted({p for p in (_public_id(o) for o in objects) if p})
    loaded = Loaded()
    if not ids:
        return loaded
    stmt = (select(Subscription).where(one_of(session, Subscription.public_id, ids))
            .order_by(Subscription.id))
    loaded.subscriptions = {s.public_id: s for s in session.scalars(
        for_update(session, stmt, skip_locked=skip_locked))}
    if skip_locked and len(loaded.subscriptions) < len(ids):
        # Left out: held by another transaction, or not ours at all (no such row).
        absent = [i for i in ids if i not in loaded.subscriptions]
        loaded.held = frozenset(session.scalars(select(Subscription.public_id).where(
            one_of(session, Subscription.public_id, absent))))
    loaded.invoices = service.lock_invoices(
        session, [str(o["id"]) for o in objects if o.get("object") == "invoice" and o.get("id")
                  and _public_id(o) not in loaded.held])
    return loaded


def prepare_skipping(session: Session, objects: list[dict[str, Any]]) -> Loaded:
    return prepare(session, objects, skip_locked=True)


def held(loaded: Any, obj: dict[str, Any]) -> bool:
    """Whether the subscription an object names was held by another batch (its events wait
    for a later batch rather than for that batch's commit)."""
    if not isinstance(loaded, Loaded) or not loaded.held:
        return False
    public = _public_id(obj)
    return public is not None and public in loaded.held


def _loaded(ctx: EventContext) -> Loaded | None:
    found = ctx.loaded.get(DOMAIN)
    return found if isinstance(found, Loaded) else None


def _subscription(session: Session, obj: dict[str, Any], ctx: EventContext
                  ) -> Subscription | None:
    public = _public_id(obj)
    loaded = _loaded(ctx)
    if public and loaded is not None and public in loaded.subscriptions:
        return loaded.subscriptions[public]
    found = (service.find_invoice_subscription(session, obj) if obj.get("object") == "invoice"
             else service.find_subscription(session, obj))
    if found is None and public:
        # Ours by its metadata, yet unknown: fail the event (a replay applies it).
        raise LookupError(f"subscription {public} of {obj.get('id')} not found")
    return found


def on_subscription(session: Session, obj: dict[str, Any], ctx: EventContext) -> None:
    sub = _subscription(session, obj, ctx)
    if sub is None:
        return  # not one of ours
    if not service.apply_subscription(session, sub, obj, ctx.event_created):
        # The same second as the state we hold: which came last is unknowable from the
        # events, so take the subscription as Stripe has it now.
        service.apply_current(session, sub, ctx.stripe.retrieve_subscription(obj["id"]))


def _paid(obj: dict[str, Any]) -> bool:
    return obj.get("status") == "paid" and stripe_int(obj.get("amount_paid") or 0) > 0


def _earning(session: Session, sub: Subscription, inv: SubscriptionInvoice,
             ctx: EventContext) -> list[ledger.JournalSpec]:
    charge = ctx.stripe.invoice_charge(inv.stripe_invoice_id)
    txn_id = expandable_id(charge.get("balance_transaction"))
    if txn_id is None:
        raise LookupError(f"charge {charge.get('id')} of {inv.stripe_invoice_id} has no "
                          "balance transaction")
    return service.invoice_paid(session, sub, inv, charge, ctx.stripe.balance_transaction(txn_id),
                                ctx.fee_rate)


def on_invoice(session: Session, obj: dict[str, Any], ctx: EventContext) -> None:
    sub = _subscription(session, obj, ctx)
    if sub is None:
        return
    loaded = _loaded(ctx)
    # The batch's invoices were read after their subscriptions were locked (``prepare``): an
    # invoice of a subscription locked there and not among them is new.
    complete = loaded is not None and loaded.subscriptions.get(_public_id(obj) or "") is sub
    inv = service.record_invoice(session, sub, obj,
                                 loaded.invoices if loaded is not None else None,
                                 complete=complete)
    if _paid(obj) and not service.earning_posted(session, inv):
        ctx.add(_earning(session, sub, inv, ctx))


def _ensure_earning(session: Session, inv: SubscriptionInvoice, ctx: EventContext) -> None:
    """Book the invoice's earning first when a refund or dispute overtakes the invoice's
    events, so the take-back finds it pending whatever the delivery order (the invoice
    event, when it comes, finds it booked and writes nothing)."""
    if not service.earning_posted(session, inv):
        sub = session.get(Subscription, inv.subscription_id)
        assert sub is not None
        ledger.post_many(session, _earning(session, sub, inv, ctx))


def _charge_invoice(session: Session, obj: dict[str, Any], ctx: EventContext
                    ) -> SubscriptionInvoice | None:
    """The invoice of ours a dispute's charge paid: our copy, found by charge or intent; if
    we have none yet (the dispute overtook every invoice event), the invoice Stripe says the
    PaymentIntent pays, recorded now if it is one of our subscriptions'."""
    inv = service.invoice_for_charge(session, obj)
    intent = expandable_id(obj.get("payment_intent"))
    if inv is not None or intent is None:
        return inv
    invoice = ctx.stripe.payment_invoice(intent)
    if invoice is None or invoice.get("status") != "paid":
        return None  # not an invoice's payment (a tip's, a deal's), or not paid by it
    sub = service.find_invoice_subscription(session, invoice)
    if sub is None:
        return None  # an invoice of a subscription that is not ours
    return service.record_invoice(session, sub, invoice)


def on_dispute(session: Session, dispute: dict[str, Any], ctx: EventContext) -> None:
    inv = _charge_invoice(session, dispute, ctx)
    if inv is None:
        return
    _ensure_earning(session, inv, ctx)
    service.dispute_changed(session, inv, dispute)


def on_refund(session: Session, refund: dict[str, Any], ctx: EventContext) -> None:
    if refund.get("status") != "succeeded" or not refund.get("balance_transaction"):
        return  # pending or failed refunds move no money
    inv = service.invoice_for_charge(session, refund)
    if inv is None:
        if kind_of(refund) == "subscription_refund":
            raise LookupError(f"invoice of refund {refund.get('id')} not found")
        return
    _ensure_earning(session, inv, ctx)
    txn_id = expandable_id(refund.get("balance_transaction"))
    assert txn_id is not None  # noqa: S101 - checked above
    service.refund_settled(session, inv, refund, ctx.stripe.balance_transaction(txn_id),
                           ctx.fee_rate)


_REFUNDS = frozenset({"refund.created", "refund.updated", "charge.refund.updated"})
_PAID = frozenset({"invoice.paid", "invoice.payment_succeeded"})


def transaction_ids(event_type: str, obj: dict[str, Any]) -> list[str]:
    txn = obj.get("balance_transaction")
    return [txn] if event_type in _REFUNDS and isinstance(txn, str) else []


def invoice_ids(event_type: str, obj: dict[str, Any]) -> list[str]:
    """Paid invoices of ours in the batch: their charges are fetched together."""
    if event_type in _PAID and obj.get("status") == "paid" and _public_id(obj):
        amount = obj.get("amount_paid")
        if isinstance(amount, int) and amount > 0:
            return [str(obj["id"])]
    return []


EVENTS = EventRoutes(
    kinds=KINDS,
    routes={
        "customer.subscription.created": Route(on_subscription),
        "customer.subscription.updated": Route(on_subscription),
        "customer.subscription.deleted": Route(on_subscription),
        "customer.subscription.paused": Route(on_subscription),
        "customer.subscription.resumed": Route(on_subscription),
        "invoice.created": Route(on_invoice),
        "invoice.finalized": Route(on_invoice),
        "invoice.paid": Route(on_invoice),
        "invoice.payment_succeeded": Route(on_invoice),
        "invoice.payment_failed": Route(on_invoice),
        "invoice.payment_action_required": Route(on_invoice),
        "invoice.voided": Route(on_invoice),
        "invoice.marked_uncollectible": Route(on_invoice),
        "refund.created": Route(on_refund, reads_ledger=True),
        "refund.updated": Route(on_refund, reads_ledger=True),
        "charge.refund.updated": Route(on_refund, reads_ledger=True),
        "charge.dispute.created": Route(on_dispute, reads_ledger=True),
        "charge.dispute.updated": Route(on_dispute, reads_ledger=True),
        "charge.dispute.closed": Route(on_dispute, reads_ledger=True),
        "charge.dispute.funds_withdrawn": Route(on_dispute, reads_ledger=True),
        "charge.dispute.funds_reinstated": Route(on_dispute, reads_ledger=True),
    },
    prepare=prepare,
    prepare_skipping=prepare_skipping,
    held=held,
    transaction_ids=transaction_ids,
    invoice_ids=invoice_ids,
)
