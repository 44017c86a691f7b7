"""Sponsored-post deals: a brand's money held in escrow, released to the creator per milestone.

State (``docs/architecture.md``, "Deals and their journals")::

    proposed -> accepted | declined;  accepted -> funding -> funded -> completed
    proposed | accepted | funding -> canceled (free);  funded -> canceled (escrow refunded)
    funded -> disputed (a party, or a chargeback on the funding payment) -> resolved (admin)

Every check-then-move (release, refund, resolution) runs under the deal's row lock
(:func:`lock_deal`), so two requests on one deal are applied one after the other and the
second sees what the first did. Money enters escrow only from Stripe's records (the funding
charge's balance transaction); the ledger's platform ``deal_escrow`` account holds it, per
deal by journal source ``("deal", deal.public_id)``. The deal's escrow figures move in the
same transaction as the journals and always equal the ledger (see :func:`ledger_escrow`).

Nothing here talks to Stripe: views and event handlers hand Stripe's answers in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.accounts.models import Brand, Creator
from payments.accounts.service import find_creator
from payments.clock import now_ts
from payments.db import for_update
from payments.deals.models import (
    FEE_BEARERS,
    Deal,
    DealRefund,
    DealTransition,
    Milestone,
)
from payments.errors import InvalidRequest, InvalidTransition, NotFound
from payments.events import stripe_int
from payments.ledger import service as ledger
from payments.money import CURRENCIES, allocate, split_fee

DAY = 86_400
MAX_MILESTONES = 20
# How a PaymentIntent status maps onto the deal's payment progress (forward only).
PI_STATUS = {
    "requires_payment_method": "requires_payment",
    "requires_confirmation": "requires_payment",
    "requires_action": "requires_payment",
    "requires_capture": "processing",
    "processing": "processing",
    "succeeded": "succeeded",
    "canceled": "canceled",
}
PAYMENT_RANK = {None: -1, "requires_payment": 0, "failed": 1, "processing": 2, "succeeded": 3,
                "canceled": 3}
UNRELEASED = ("pending", "submitted", "changes_requested")


@dataclass(frozen=True)
class Actor:
    """Who acts: ``role`` (brand, creator, admin, stripe, system), its row id and public id."""

    role: str
    owner_id: int | None = None
    public_id: str | None = None


STRIPE = Actor("stripe")
SYSTEM = Actor("system")


def _invalid(deal: Deal, action: str, detail: str = "") -> InvalidTransition:
    return InvalidTransition(
        f"A {deal.status} deal cannot be {action}{': ' + detail if detail else '.'}",
        code="invalid_transition",
    )


def _record(session: Session, deal: Deal, action: str, actor: Actor, frm: str | None,
            to: str | None, note: str | None = None, milestone: Milestone | None = None) -> None:
    session.add(DealTransition(
        deal_id=deal.id, milestone_id=milestone.id if milestone is not None else None,
        action=action, from_status=frm, to_status=to, actor_role=actor.role,
        actor_id=actor.public_id, note=note, created=now_ts()))


def _move(session: Session, deal: Deal, to: str, action: str, actor: Actor,
          note: str | None = None) -> None:
    frm = deal.status
    deal.status = to
    _record(session, deal, action, actor, frm, to, note)


def _ms_move(session: Session, deal: Deal, ms: Milestone, to: str, action: str, actor: Actor,
             note: str | None = None) -> None:
    frm = ms.status
    ms.status = to
    _record(session, deal, action, actor, frm, to, note, ms)


def source(deal: Deal) -> tuple[str, str]:
    return ("deal", deal.public_id)


def _escrow_account(deal: Deal) -> ledger.AccountRef:
    return ledger.platform_account("deal_escrow", deal.currency)


def remaining(deal: Deal) -> int:
    return deal.escrow_funded - deal.escrow_released - deal.escrow_refunded


def escrow(deal: Deal) -> dict[str, int]:
    left = remaining(deal)
    return {"funded": deal.escrow_funded, "released": deal.escrow_released,
            "refunded": deal.escrow_refunded,
            "frozen": left if deal.status == "disputed" else 0, "remaining": left}


def ledger_escrow(session: Session, deal: Deal) -> int:
    """What the ledger's ``deal_escrow`` holds for this deal (positive: owed to someone)."""
    return -ledger.source_balance(session, _escrow_account(deal), source(deal))


# ----------------------------------------------------------------------------- creating


def create_deal(session: Session, data: dict[str, Any], *, brand_id: int, fee_bearer: str,
                fee_rate: Decimal) -> Deal:
    """Validate and store a proposed deal (input checks first, then the creator: 404)."""
    milestones = data["milestones"]
    if not 1 <= len(milestones) <= MAX_MILESTONES:
        raise InvalidRequest(f"A deal has 1 to {MAX_MILESTONES} milestones.",
                             code="invalid_milestones", param="milestones")
    currency = data["currency"]
    total = sum(m["amount"] for m in milestones)
    minimum = CURRENCIES[currency].min_charge
    if total < minimum:
        raise InvalidRequest(f"A deal in {currency} must total at least {minimum}.",
                             code="amount_too_small", param="milestones")
    if total > 10**12:
        raise InvalidRequest("The deal's total is too large.", code="amount_too_large",
                             param="milestones")
    if fee_bearer not in FEE_BEARERS:
        raise ValueError(f"fee bearer {fee_bearer!r}")
    creator = find_creator(session, data["creator"])
    deal = Deal(brand_id=brand_id, creator_id=creator.id, title=data["title"],
                brief=data["brief"], currency=currency, amount=total,
                review_days=data.get("review_days", 7), status="proposed",
                platform_fee_rate=str(fee_rate), fee_bearer=fee_bearer,
                escrow_funded=0, escrow_released=0, escrow_refunded=0, frozen_amount=0,
                funding_attempts=0)
    session.add(deal)
    session.flush()
    for i, m in enumerate(milestones):
        session.add(Milestone(deal_id=deal.id, position=i, title=m["title"],
                              platform=m["platform"], deliverable=m["deliverable"],
                              amount=m["amount"], due_date=m["due_date"].isoformat(),
                              status="pending", revision_count=0, processor_fee_share=0))
    brand = session.get(Brand, brand_id)
    _record(session, deal, "proposed", Actor("brand", brand_id,
                                             brand.public_id if brand else None), None,
            "proposed")
    session.flush()
    return deal


# ----------------------------------------------------------------------------- reading


def _by_public_id(session: Session, public_id: str) -> Deal | None:
    found: Deal | None = session.scalar(select(Deal).where(Deal.public_id == public_id))
    return found


def get_deal(session: Session, public_id: str, actor: Actor) -> Deal:
    """The deal, if ``actor`` is its brand, its creator or an admin; otherwise 404."""
    deal = _by_public_id(session, public_id)
    if deal is None or not (
        actor.role == "admin"
        or (actor.role == "brand" and deal.brand_id == actor.owner_id)
        or (actor.role == "creator" and deal.creator_id == actor.owner_id)
    ):
        raise NotFound("No such deal.", code="deal_not_found")
    return deal


def milestones_of(session: Session, deal: Deal) -> list[Milestone]:
    stmt = (select(Milestone).where(Milestone.deal_id == deal.id).order_by(Milestone.position)
            .execution_options(populate_existing=True))
    return list(session.scalars(stmt))


def get_milestone(session: Session, deal: Deal, public_id: str) -> Milestone:
    ms: Milestone | None = session.scalar(
        select(Milestone).where(Milestone.public_id == public_id, Milestone.deal_id == deal.id))
    if ms is None:
        raise NotFound("No such milestone in this deal.", code="milestone_not_found")
    return ms


def lock_deal(session: Session, deal: Deal) -> Deal:
    """Take the deal's row lock and re-read it (what another transaction committed counts)."""
    stmt = (select(Deal).where(Deal.id == deal.id)
            .execution_options(populate_existing=True))
    locked: Deal = session.scalars(for_update(session, stmt)).one()
    return locked


def _lock_milestone(session: Session, deal: Deal,
                    ms: Milestone) -> tuple[Deal, Milestone, list[Milestone]]:
    """The deal locked and re-read, the milestone and all the deal's milestones, fresh."""
    deal = lock_deal(session, deal)
    milestones = milestones_of(session, deal)
    for m in milestones:
        if m.id == ms.id:
            return deal, m, milestones
    raise NotFound("No such milestone in this deal.", code="milestone_not_found")


def list_deals(session: Session, actor: Actor, *, limit: int, starting_after: str | None,
               status: str | None) -> tuple[list[Deal], bool]:
    owner = Deal.brand_id if actor.role == "brand" else Deal.creator_id
    stmt = select(Deal).where(owner == actor.owner_id).order_by(Deal.id.desc())
    if status:
        stmt = stmt.where(Deal.status == status)
    if starting_after:
        anchor = session.scalar(select(Deal.id).where(Deal.public_id == starting_after,
                                                      owner == actor.owner_id))
        if anchor is None:
            raise NotFound("No such deal to start after.", code="deal_not_found",
                           param="starting_after")
        stmt = stmt.where(Deal.id < anchor)
    rows = list(session.scalars(stmt.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def review_due_at(deal: Deal, ms: Milestone) -> int | None:
    if ms.status != "submitted" or ms.submitted_at is None:
        return None
    return ms.submitted_at + deal.review_days * DAY


def deal_view(session: Session, deal: Deal, actor: Actor) -> dict[str, Any]:
    """The deal as the API shows it: milestones, escrow figures, refunds and history."""
    brand = session.get(Brand, deal.brand_id)
    creator = session.get(Creator, deal.creator_id)
    assert brand is not None and creator is not None
    milestones = milestones_of(session, deal)
    by_id = {m.id: m.public_id for m in milestones}
    refunds = session.scalars(select(DealRefund).where(DealRefund.deal_id == deal.id)
                              .order_by(DealRefund.id)).all()
    history = session.scalars(select(DealTransition).where(DealTransition.deal_id == deal.id)
                              .order_by(DealTransition.id)).all()
    body: dict[str, Any] = {
        "id": deal.public_id,
        "object": "deal",
        "brand": brand.public_id,
        "brand_name": brand.name,
        "creator": creator.public_id,
        "creator_handle": creator.handle,
        "title": deal.title,
        "brief": deal.brief,
        "currency": deal.currency,
        "amount": deal.amount,
        "review_days": deal.review_days,
        "status": deal.status,
        "milestones": [{
            "id": m.public_id, "object": "milestone", "title": m.title,
            "platform": m.platform, "deliverable": m.deliverable, "amount": m.amount,
            "due_date": m.due_date, "status": m.status, "proof_url": m.proof_url,
            "note": m.note, "change_note": m.change_note, "revision_count": m.revision_count,
            "submitted_at": m.submitted_at, "review_due_at": review_due_at(deal, m),
            "released_at": m.released_at, "released_by": m.released_by,
            "platform_fee": m.platform_fee, "processor_fee": m.processor_fee_share,
            "creator_amount": m.creator_amount,
        } for m in milestones],
        "escrow": escrow(deal),
        "processor_fee": {"bearer": deal.fee_bearer, "amount": deal.processor_fee},
        "platform_fee_rate": deal.platform_fee_rate,
        "payment_intent": deal.payment_intent_id,
        "payment_status": deal.payment_status,
        "next_action": deal.next_action,
        "failure_code": deal.failure_code,
        "failure_message": deal.failure_message,
        "dispute": ({
            "opened_by": deal.dispute_opened_by, "reason": deal.dispute_reason,
            "frozen": deal.frozen_amount, "stripe_dispute": deal.stripe_dispute_id,
            "stripe_status": deal.stripe_dispute_status,
            "stripe_amount": deal.stripe_dispute_amount,
        } if deal.dispute_opened_by or deal.stripe_dispute_id else None),
        "resolution": ({
            "creator_amount": deal.resolution_creator_amount,
            "brand_refund_amount": deal.resolution_brand_refund_amount,
        } if deal.resolution_creator_amount is not None else None),
        "refunds": [{"id": r.public_id, "amount": r.amount, "reason": r.reason,
                     "status": r.status, "stripe_refund": r.stripe_refund_id,
                     "created": r.created} for r in refunds],
        "history": [{
            "action": t.action, "milestone": by_id.get(t.milestone_id or 0),
            "from": t.from_status, "to": t.to_status,
            "actor": {"role": t.actor_role, "id": t.actor_id}, "note": t.note,
            "created": t.created,
        } for t in history],
        "created": deal.created,
        "accepted_at": deal.accepted_at,
        "funded_at": deal.funded_at,
        "closed_at": deal.closed_at,
    }
    if actor.role == "brand" and deal.status in ("accepted", "funding") and (
            deal.payment_status in (None, "requires_payment", "failed")):
        body["client_secret"] = deal.client_secret
    return body


# ----------------------------------------------------------------------------- terms


def accept(session: Session, deal: Deal, actor: Actor) -> Deal:
    deal = lock_deal(session, deal)
    if deal.status != "proposed":
        raise _invalid(deal, "accepted")
    deal.accepted_at = now_ts()
    _move(session, deal, "accepted", "accepted", actor)
    session.flush()
    return deal


def decline(session: Session, deal: Deal, actor: Actor, reason: str | None) -> Deal:
    deal = lock_deal(session, deal)
    if deal.status != "proposed":
        raise _invalid(deal, "declined")
    deal.closed_at = now_ts()
    _move(session, deal, "declined", "declined", actor, reason)
    session.flush()
    return deal


# ----------------------------------------------------------------------------- funding


def payment_metadata(deal: Deal) -> dict[str, str]:
    return {"creatorpay_kind": "deal", "deal_id": deal.public_id}


def start_funding(session: Session, deal: Deal, actor: Actor) -> Deal:
    """The brand pays: ``accepted`` -> ``funding``; a ``funding`` deal whose payment failed or
    awaits the brand may be paid again. Anything else is ``409``."""
    deal = lock_deal(session, deal)
    if deal.status == "accepted":
        _move(session, deal, "funding", "funding", actor)
    elif not (deal.status == "funding"
              and deal.payment_status in (None, "requires_payment", "failed")):
        raise _invalid(deal, "funded", "it is paid or being paid" if deal.status == "funding"
                       else "")
    deal.funding_attempts += 1
    session.flush()
    return deal


def _advance_payment(deal: Deal, status: str) -> None:
    current = deal.payment_status
    if PAYMENT_RANK[status] > PAYMENT_RANK[current] or (
            current == "failed" and status != "requires_payment"):
        deal.payment_status = status


def apply_payment_intent(session: Session, deal: Deal, intent: dict[str, Any]) -> Deal:
    """Record what a PaymentIntent says (our API answer or an event), moving only forward."""
    if deal.payment_intent_id is None:
        deal.payment_intent_id = intent["id"]
    if intent.get("client_secret") and not deal.client_secret:
        deal.client_secret = intent["client_secret"]
    status = PI_STATUS.get(intent.get("status", ""), "requires_payment")
    next_action = intent.get("next_action")
    deal.next_action = (next_action.get("type") if isinstance(next_action, dict)
                        and status == "requires_payment" else None)
    error = intent.get("last_payment_error")
    if isinstance(error, dict) and status == "requires_payment":
        deal.failure_code = error.get("decline_code") or error.get("code")
        deal.failure_message = (error.get("message") or "")[:500]
        if intent.get("status") == "requires_payment_method":
            status = "failed"
    _advance_payment(deal, status)
    session.flush()
    return deal


def record_decline(session: Session, deal: Deal, code: str, message: str) -> Deal:
    deal.failure_code = code
    deal.failure_message = message[:500]
    _advance_payment(deal, "failed")
    _record(session, deal, "funding_failed", STRIPE, deal.status, deal.status, code)
    session.flush()
    return deal


def fund_key(deal: Deal) -> str:
    return f"deal_fund:{deal.public_id}"


def funded_in_ledger(session: Session, deal: Deal) -> bool:
    return ledger.journal_by_key(session, fund_key(deal)) is not None


def funding_succeeded(session: Session, deal: Deal, charge: dict[str, Any],
                      txn: dict[str, Any]) -> list[ledger.JournalSpec]:
    """The funding charge is captured: the gross goes into escrow. The journals, for post_many.

    ``{key}`` (kind ``escrow``): stripe_balance -> deal_escrow, the gross. ``{key}:processor_fee``
    (kind ``fee``): Stripe's fee as the platform's ``processor_fees`` expense; when the
    creator bears it, each release later takes its milestone's share back from the creator.
    """
    if txn["currency"] != deal.currency:
        raise ValueError(f"balance transaction {txn['id']} settled in {txn['currency']}, "
                         f"deal in {deal.currency}")
    deal.charge_id = deal.charge_id or charge["id"]
    if deal.payment_intent_id is None and isinstance(charge.get("payment_intent"), str):
        deal.payment_intent_id = charge["payment_intent"]
    _advance_payment(deal, "succeeded")
    if deal.escrow_funded:
        return []  # booked already: the deal's state moved with the journals
    gross = stripe_int(txn["amount"])
    fee = stripe_int(txn["fee"], "fee")
    if gross != deal.amount:
        raise ValueError(f"deal {deal.public_id}: charged {gross}, the deal is {deal.amount}")
    effective_at = stripe_int(txn["created"], "created")
    milestones = milestones_of(session, deal)
    if deal.fee_bearer == "creator" and fee:
        for m, share in zip(milestones, allocate(fee, [m.amount for m in milestones]),
                            strict=True):
            m.processor_fee_share = share
    deal.escrow_funded = gross
    deal.processor_fee = fee
    deal.funded_at = now_ts()
    if deal.status in ("accepted", "funding"):
        _move(session, deal, "funded", "funded", STRIPE)
    else:
        # Money for a deal no longer waiting for it (canceled while the payment went through):
        # it sits in escrow for an admin to return.
        _record(session, deal, "funds_received", STRIPE, deal.status, deal.status,
                f"payment arrived while {deal.status}")
    stripe_balance = ledger.platform_account("stripe_balance", deal.currency)
    specs = [ledger.JournalSpec(fund_key(deal), "escrow",
                                [ledger.debit(stripe_balance, gross),
                                 ledger.credit(_escrow_account(deal), gross)],
                                source(deal), effective_at)]
    if fee:
        specs.append(ledger.JournalSpec(
            f"{fund_key(deal)}:processor_fee", "fee",
            [ledger.debit(ledger.platform_account("processor_fees", deal.currency), fee),
             ledger.credit(stripe_balance, fee)], source(deal), effective_at))
    session.flush()
    return specs


# ----------------------------------------------------------------------------- milestones


def _require_funded(deal: Deal, action: str) -> None:
    if deal.status != "funded":
        raise _invalid(deal, action, "milestones move only while the deal is funded")


def submit(session: Session, deal: Deal, ms: Milestone, actor: Actor, proof_url: str,
           note: str | None) -> Deal:
    deal, ms, _ = _lock_milestone(session, deal, ms)
    _require_funded(deal, "submitted to")
    if ms.status not in ("pending", "changes_requested"):
        raise InvalidTransition(f"A {ms.status} milestone cannot be submitted.",
                                code="invalid_transition")
    ms.proof_url = proof_url
    ms.note = note
    ms.submitted_at = now_ts()
    _ms_move(session, deal, ms, "submitted", "submitted", actor, note)
    session.flush()
    return deal


def request_changes(session: Session, deal: Deal, ms: Milestone, actor: Actor,
                    note: str) -> Deal:
    deal, ms, _ = _lock_milestone(session, deal, ms)
    _require_funded(deal, "reviewed")
    if ms.status != "submitted":
        raise InvalidTransition(f"Changes can be requested on a submitted milestone; this "
                                f"one is {ms.status}.", code="invalid_transition")
    ms.change_note = note
    ms.revision_count += 1
    _ms_move(session, deal, ms, "changes_requested", "changes_requested", actor, note)
    session.flush()
    return deal


def release_key(ms: Milestone) -> str:
    return f"deal_release:{ms.public_id}"


def _creator_journals(deal: Deal, key: str, amount: int, processor_fee: int,
                      effective_at: int) -> tuple[list[ledger.JournalSpec], int, int]:
    """Escrow -> the creator's ``pending``, less the platform fee (and, when the creator bears
    it, their share of Stripe's fee, never more than is left: the platform bears the rest).
    Returns the journals, the platform fee and the processor fee charged."""
    pending = ledger.creator_account(deal.creator_id, "pending", deal.currency)
    platform_fee, _ = split_fee(amount, Decimal(deal.platform_fee_rate))
    processor_fee = max(0, min(processor_fee, amount - platform_fee))
    specs = [ledger.JournalSpec(key, "deal", [ledger.debit(_escrow_account(deal), amount),
                                              ledger.credit(pending, amount)],
                                source(deal), effective_at)]
    if processor_fee:
        specs.append(ledger.JournalSpec(
            f"{key}:processor_fee", "fee",
            [ledger.debit(pending, processor_fee),
             ledger.credit(ledger.platform_account("processor_fees", deal.currency),
                           processor_fee)], source(deal), effective_at))
    if platform_fee:
        specs.append(ledger.JournalSpec(
            f"{key}:platform_fee", "fee",
            [ledger.debit(pending, platform_fee),
             ledger.credit(ledger.platform_account("platform_revenue", deal.currency),
                           platform_fee)], source(deal), effective_at))
    return specs, platform_fee, processor_fee


def approve(session: Session, deal: Deal, ms: Milestone, actor: Actor) -> Deal:
    """Release a submitted milestone's amount from escrow to the creator (under the lock)."""
    deal, ms, milestones = _lock_milestone(session, deal, ms)
    return _release(session, deal, ms, milestones, actor, auto=False)


def _release(session: Session, deal: Deal, ms: Milestone, milestones: list[Milestone],
             actor: Actor, *, auto: bool) -> Deal:
    _require_funded(deal, "approved")
    if ms.status != "submitted":
        raise InvalidTransition(f"Only a submitted milestone can be approved; this one is "
                                f"{ms.status}.", code="invalid_transition")
    if remaining(deal) < ms.amount:
        raise InvalidTransition("The escrow no longer holds this milestone's amount.",
                                code="invalid_transition")
    now = now_ts()
    share = ms.processor_fee_share if deal.fee_bearer == "creator" else 0
    specs, platform_fee, share = _creator_journals(deal, release_key(ms), ms.amount, share,
                                                   now)
    ledger.post_many(session, specs)
    ms.released_at = now
    ms.released_by = "auto" if auto else actor.role
    ms.platform_fee = platform_fee
    ms.processor_fee_share = share
    ms.creator_amount = ms.amount - platform_fee - share
    deal.escrow_released += ms.amount
    _ms_move(session, deal, ms, "released", "auto_approved" if auto else "approved", actor,
             f"review period of {deal.review_days} days passed" if auto else None)
    if all(m.status == "released" for m in milestones):
        deal.closed_at = now
        _move(session, deal, "completed", "completed", SYSTEM)
    session.flush()
    return deal


def due_milestones(session: Session, now: int, limit: int = 500) -> list[int]:
    """Submitted milestones of funded deals whose review period has passed."""
    rows = session.execute(
        select(Milestone.id, Milestone.submitted_at, Deal.review_days)
        .join(Deal, Deal.id == Milestone.deal_id)
        .where(Milestone.status == "submitted", Deal.status == "funded")
        .order_by(Milestone.submitted_at).limit(limit * 4)).all()
    return [r[0] for r in rows if r[1] is not None and r[1] + r[2] * DAY <= now][:limit]


def auto_approve(session: Session, milestone_id: int, now: int) -> bool:
    """Approve one milestone whose review period passed, if it still qualifies."""
    ms = session.get(Milestone, milestone_id)
    if ms is None:
        return False
    deal = session.get(Deal, ms.deal_id)
    assert deal is not None
    deal, ms, milestones = _lock_milestone(session, deal, ms)
    due = review_due_at(deal, ms)
    if deal.status != "funded" or due is None or due > now:
        return False  # answered, disputed or canceled meanwhile
    _release(session, deal, ms, milestones, SYSTEM, auto=True)
    return True


# ----------------------------------------------------------------------------- cancel


@dataclass
class CancelPlan:
    """What a cancellation needs from Stripe: nothing, the PaymentIntent canceled, or a refund."""

    deal: Deal
    cancel_intent: bool = False
    refund: DealRefund | None = None


def cancel(session: Session, deal: Deal, actor: Actor, reason: str | None) -> CancelPlan:
    """Cancel: free before funding; after funding the unreleased escrow goes back to the brand
    (a refund row, committed before the view asks Stripe); released milestones stay."""
    deal = lock_deal(session, deal)
    if deal.status in ("proposed", "accepted"):
        deal.closed_at = now_ts()
        _move(session, deal, "canceled", "canceled", actor, reason)
        session.flush()
        return CancelPlan(deal)
    if deal.status == "funding":
        if deal.payment_status in ("processing", "succeeded"):
            raise _invalid(deal, "canceled", "its payment is going through")
        if deal.payment_intent_id is None:
            deal.closed_at = now_ts()
            _move(session, deal, "canceled", "canceled", actor, reason)
            session.flush()
            return CancelPlan(deal)
        return CancelPlan(deal, cancel_intent=True)
    if deal.status != "funded":
        raise _invalid(deal, "canceled")
    left = remaining(deal)
    for m in milestones_of(session, deal):
        if m.status in UNRELEASED:
            _ms_move(session, deal, m, "canceled", "canceled", actor, reason)
    deal.closed_at = now_ts()
    _move(session, deal, "canceled", "canceled", actor, reason)
    refund = None
    if left > 0:
        refund = DealRefund(deal_id=deal.id, amount=left, reason="cancel", status="pending")
        session.add(refund)
    session.flush()
    return CancelPlan(deal, refund=refund)


def intent_canceled(session: Session, deal: Deal, actor: Actor, reason: str | None,
                    intent: dict[str, Any]) -> Deal:
    """Stripe canceled the funding PaymentIntent: the deal is canceled, nothing was paid."""
    deal = lock_deal(session, deal)
    apply_payment_intent(session, deal, intent)
    if deal.status == "funding":
        deal.closed_at = now_ts()
        _move(session, deal, "canceled", "canceled", actor, reason)
    session.flush()
    return deal


def refund_metadata(deal: Deal, refund: DealRefund) -> dict[str, str]:
    return {"creatorpay_kind": "deal_refund", "deal_id": deal.public_id,
            "refund_id": refund.public_id}


def refund_key(stripe_refund_id: str) -> str:
    return f"deal_refund:{stripe_refund_id}"


def refund_settled(session: Session, refund: DealRefund, stripe_refund: dict[str, Any]) -> None:
    """What Stripe says of one of our escrow refunds (our API answer or an event).

    Succeeded: ``deal_refund:{re}`` (kind ``escrow``): deal_escrow -> stripe_balance. A refund
    that fails after succeeding puts the money back in escrow (``deal_refund_failed:{re}``).
    """
    deal = session.get(Deal, refund.deal_id)
    assert deal is not None
    deal = lock_deal(session, deal)
    refund.stripe_refund_id = refund.stripe_refund_id or stripe_refund["id"]
    status = stripe_refund.get("status")
    amount = stripe_int(stripe_refund["amount"])
    stripe_balance = ledger.platform_account("stripe_balance", deal.currency)
    if status == "succeeded" and refund.status in ("pending", "requested"):
        ledger.post(session, refund_key(stripe_refund["id"]), "escrow",
                    [ledger.debit(_escrow_account(deal), amount),
                     ledger.credit(stripe_balance, amount)],
                    source=source(deal),
                    effective_at=stripe_int(stripe_refund["created"], "created"))
        refund.status = "succeeded"
        deal.escrow_refunded += amount
        _record(session, deal, "refunded", STRIPE, deal.status, deal.status,
                f"{amount} returned to the brand ({stripe_refund['id']})")
    elif status in ("failed", "canceled") and refund.status != status:
        if refund.status == "succeeded":
            ledger.post(session, f"deal_refund_failed:{stripe_refund['id']}", "escrow",
                        [ledger.debit(stripe_balance, amount),
                         ledger.credit(_escrow_account(deal), amount)],
                        source=source(deal), effective_at=now_ts())
            deal.escrow_refunded -= amount
        refund.status = status
        refund.failure_message = str(stripe_refund.get("failure_reason") or status)[:500]
        _record(session, deal, "refund_failed", STRIPE, deal.status, deal.status,
                refund.failure_message)
    session.flush()


def refund_refused(session: Session, refund: DealRefund, message: str) -> None:
    """Stripe refused to make the refund: the money stays in escrow, the refund is failed."""
    refund.status = "failed"
    refund.failure_message = message[:500]
    deal = session.get(Deal, refund.deal_id)
    assert deal is not None
    _record(session, deal, "refund_failed", STRIPE, deal.status, deal.status, message[:500])
    session.flush()


def find_refund(session: Session, obj: dict[str, Any]) -> DealRefund | None:
    found: DealRefund | None = session.scalar(
        select(DealRefund).where(DealRefund.stripe_refund_id == obj["id"]))
    if found is None:
        meta = obj.get("metadata") or {}
        ref = meta.get("refund_id") if isinstance(meta, dict) else None
        if ref:
            found = session.scalar(select(DealRefund).where(DealRefund.public_id == ref))
    return found


# ----------------------------------------------------------------------------- disputes


def open_dispute(session: Session, deal: Deal, actor: Actor, reason: str | None) -> Deal:
    """A party disputes the deal: the unreleased escrow is frozen until an admin resolves."""
    deal = lock_deal(session, deal)
    if deal.status != "funded":
        raise _invalid(deal, "disputed")
    deal.dispute_opened_by = actor.role
    deal.dispute_reason = reason
    deal.frozen_amount = remaining(deal)
    _move(session, deal, "disputed", "disputed", actor, reason)
    session.flush()
    return deal


def chargeback(session: Session, deal: Deal, dispute: dict[str, Any]) -> None:
    """A chargeback on the funding payment: freeze the deal; book each dispute transaction.

    Stripe takes the disputed amount and its fee from our balance: ``deal_chargeback:{dp}:
    {txn}`` (kind ``dispute``) debits the platform's ``refunds_and_disputes`` clearing, and a
    won dispute's reinstatement credits it back. The escrow itself stays frozen for the
    admin's resolution, whose brand part is then booked against that clearing.
    """
    deal = lock_deal(session, deal)
    if deal.stripe_dispute_id is None:
        deal.stripe_dispute_id = dispute["id"]
        if deal.status == "funded":
            deal.dispute_opened_by = "chargeback"
            deal.dispute_reason = dispute.get("reason")
            deal.frozen_amount = remaining(deal)
            _move(session, deal, "disputed", "chargeback", STRIPE, dispute.get("reason"))
        else:
            _record(session, deal, "chargeback", STRIPE, deal.status, deal.status,
                    dispute.get("reason"))
    elif dispute["id"] != deal.stripe_dispute_id:
        raise ValueError(f"deal {deal.public_id} already has dispute {deal.stripe_dispute_id}")
    final = ("won", "lost")
    if deal.stripe_dispute_status not in final or dispute.get("status") in final:
        deal.stripe_dispute_status = dispute.get("status")
    deal.stripe_dispute_amount = stripe_int(dispute["amount"])
    clearing = ledger.platform_account("refunds_and_disputes", deal.currency)
    stripe_balance = ledger.platform_account("stripe_balance", deal.currency)
    for txn in dispute.get("balance_transactions") or []:
        if not isinstance(txn, dict):
            continue
        if txn["currency"] != deal.currency:
            raise ValueError(f"dispute transaction {txn['id']} in {txn['currency']}")
        net = stripe_int(txn["net"], "net")
        if not net:
            continue
        legs = ([ledger.debit(clearing, -net), ledger.credit(stripe_balance, -net)] if net < 0
                else [ledger.debit(stripe_balance, net), ledger.credit(clearing, net)])
        ledger.post(session, f"deal_chargeback:{dispute['id']}:{txn['id']}", "dispute", legs,
                    source=source(deal), effective_at=stripe_int(txn["created"], "created"))
    session.flush()


def resolve(session: Session, deal: Deal, actor: Actor, creator_amount: int,
            brand_refund_amount: int) -> tuple[Deal, DealRefund | None]:
    """An admin splits the frozen escrow between creator and brand.

    The creator's part is released as a milestone is (less the platform fee, and their share
    of Stripe's fee when they bear it): ``deal_resolve:{deal}``. The brand's part is refunded
    through Stripe (a refund row the view then makes), or, when the freeze came from a
    chargeback (the card network returns the money), booked against the chargeback clearing:
    ``deal_chargeback_settle:{deal}``.
    """
    deal = lock_deal(session, deal)
    if deal.status != "disputed":
        raise _invalid(deal, "resolved", "only a disputed deal is resolved")
    left = remaining(deal)
    if creator_amount + brand_refund_amount != left:
        raise InvalidRequest(
            f"creator_amount + brand_refund_amount must equal the frozen escrow, {left}.",
            code="resolution_mismatch", param="creator_amount",
            extra={"frozen": left})
    now = now_ts()
    unreleased = [m for m in milestones_of(session, deal) if m.status in UNRELEASED]
    if creator_amount:
        share = 0
        if deal.fee_bearer == "creator":
            owed = sum(m.processor_fee_share for m in unreleased)
            share = allocate(owed, [creator_amount, brand_refund_amount])[0] if owed else 0
        specs, _, _ = _creator_journals(deal, f"deal_resolve:{deal.public_id}",
                                        creator_amount, share, now)
        ledger.post_many(session, specs)
        deal.escrow_released += creator_amount
    refund = None
    if brand_refund_amount:
        if deal.stripe_dispute_id is not None:
            ledger.post(session, f"deal_chargeback_settle:{deal.public_id}", "dispute",
                        [ledger.debit(_escrow_account(deal), brand_refund_amount),
                         ledger.credit(ledger.platform_account("refunds_and_disputes",
                                                               deal.currency),
                                       brand_refund_amount)],
                        source=source(deal), effective_at=now)
            deal.escrow_refunded += brand_refund_amount
        else:
            refund = DealRefund(deal_id=deal.id, amount=brand_refund_amount, reason="resolve",
                                status="pending")
            session.add(refund)
    for m in unreleased:
        _ms_move(session, deal, m, "resolved", "resolved", actor)
    deal.resolution_creator_amount = creator_amount
    deal.resolution_brand_refund_amount = brand_refund_amount
    deal.frozen_amount = 0
    deal.closed_at = now
    _move(session, deal, "resolved", "resolved", actor,
          f"creator {creator_amount}, brand {brand_refund_amount}")
    session.flush()
    return deal, refund


# ----------------------------------------------------------------------------- events


def find_deal(session: Session, obj: dict[str, Any]) -> Deal | None:
    """The deal a Stripe object belongs to (locked), by metadata, PaymentIntent or charge."""
    meta = obj.get("metadata") or {}
    deal_id = meta.get("deal_id") if isinstance(meta, dict) else None
    if deal_id:
        found = _by_public_id(session, str(deal_id))
        return lock_deal(session, found) if found is not None else None
    pi = obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    charge = obj.get("id") if obj.get("object") == "charge" else obj.get("charge")
    for column, value in ((Deal.payment_intent_id, pi), (Deal.charge_id, charge)):
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, str) and value:
            row: Deal | None = session.scalar(
                for_update(session, select(Deal).where(column == value)))
            if row is not None:
                return row
    return None


def lock_many(session: Session, public_ids: Sequence[str]) -> dict[str, Deal]:
    from payments.db import one_of

    if not public_ids:
        return {}
    stmt = (select(Deal).where(one_of(session, Deal.public_id, sorted(set(public_ids))))
            .order_by(Deal.id))
    return {d.public_id: d for d in session.scalars(for_update(session, stmt))}
