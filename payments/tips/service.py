"""Tips: create, read, refund, and apply what Stripe reports about their payments.

Money reaches the ledger only from Stripe's own records: the charge's balance transaction
(gross and fee), the refund's, the dispute's. Event handlers hand those objects in; nothing
here talks to Stripe. Status is derived from facts that only grow (payment progress, the
largest refunded total seen, the dispute), so events applied in any order, or twice, end in
the same tip.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payments.accounts.models import Creator, Fan
from payments.accounts.service import find_creator, min_tip_amount
from payments.clock import now_ts
from payments.db import for_update
from payments.errors import Conflict, InvalidRequest, InvalidTransition, NotFound, RateLimited
from payments.events import stripe_int
from payments.ledger import service as ledger
from payments.money import Money, split_fee
from payments.tips.models import Tip, TipRefund

MAX_MESSAGE_CHARS = 500
# Forward-only payment progress: a lower rank never overwrites a higher one, except that a
# failed attempt may still be followed by success (the fan retries with another card).
PAYMENT_RANK = {"requires_payment": 0, "failed": 1, "processing": 2, "succeeded": 3}
# How a PaymentIntent status maps onto our payment progress.
PI_STATUS = {
    "requires_payment_method": "requires_payment",
    "requires_confirmation": "requires_payment",
    "requires_action": "requires_payment",
    "requires_capture": "processing",
    "processing": "processing",
    "succeeded": "succeeded",
    "canceled": "failed",
}


@dataclass(frozen=True)
class Viewer:
    role: str
    owner_id: int | None


def status_of(tip: Tip) -> str:
    if tip.dispute_id is not None:
        return "disputed"
    if tip.payment_status == "succeeded" and tip.amount_refunded > 0:
        return "refunded" if tip.amount_refunded >= tip.amount else "partially_refunded"
    return tip.payment_status


# ----------------------------------------------------------------------------- creating


@dataclass(frozen=True)
class TipRules:
    """The abuse rules a new tip must pass (from the configuration)."""

    max_amount: int
    # (at most N tips, in any window of this many seconds), or None: no rule.
    per_fan: tuple[int, int] | None = None
    per_card: tuple[int, int] | None = None


def create_tip(
    session: Session,
    data: dict[str, Any],
    *,
    fan_id: int | None,
    rules: TipRules,
) -> Tip:
    """Validate and store a tip awaiting payment (the caller then creates the PaymentIntent).

    Refusals, each explained: a creator blocked from tips (409 ``creator_blocked``), an amount
    over the maximum (400), a fan or guest over the tip velocity (429 ``tip_velocity``).
    """
    if fan_id is None and not data.get("email"):
        raise InvalidRequest(
            "A guest tip needs an email (or tip with a fan API key).",
            code="email_required",
            param="email",
        )
    message = data.get("message")
    if message is not None and len(message) > MAX_MESSAGE_CHARS:
        raise InvalidRequest(
            f"The message is {len(message)} characters; at most {MAX_MESSAGE_CHARS}.",
            code="message_too_long",
            param="message",
        )
    creator = find_creator(session, data["creator"])
    if creator.tips_blocked_reason is not None:
        # The admin's reason is for operators; the fan learns only that tips are off.
        raise Conflict(f"{creator.handle} is not accepting tips right now.",
                       code="creator_blocked", param="creator")
    currency = data["currency"]
    amount = data["amount"]
    minimum = min_tip_amount(creator, currency)
    if amount < minimum:
        raise InvalidRequest(
            f"The smallest tip to {creator.handle} in {currency} is {minimum}.",
            code="amount_too_small",
            param="amount",
        )
    if amount > rules.max_amount:
        raise InvalidRequest(
            f"The largest tip is {Money(rules.max_amount, currency).format()} "
            f"({rules.max_amount} in minor units); {amount} was asked.",
            code="amount_too_large", param="amount",
        )
    guest_email = None if fan_id is not None else str(data["email"]).lower()
    if rules.per_fan is not None:
        tipper = Tip.fan_id == fan_id if fan_id is not None else Tip.guest_email == guest_email
        _check_velocity(session, tipper, rules.per_fan, "this fan" if fan_id else "this email")
    tip = Tip(
        creator_id=creator.id,
        fan_id=fan_id,
        guest_email=guest_email,
        guest_name=None if fan_id is not None else data.get("name"),
        amount=amount,
        currency=currency,
        message=message or None,
        anonymous=bool(data.get("anonymous", False)),
        payment_status="requires_payment",
        amount_refunded=0,
    )
    session.add(tip)
    session.flush()
    return tip


def _check_velocity(session: Session, whose: Any, rule: tuple[int, int], who: str) -> None:
    """At most ``rule[0]`` tips (any outcome: card testing fails a lot) in ``rule[1]`` s."""
    limit, window = rule
    since = now_ts() - window
    recent = list(session.scalars(
        select(Tip.created).where(whose, Tip.created > since)
        .order_by(Tip.created.desc()).limit(limit)))
    if len(recent) >= limit:
        retry = recent[-1] + window - now_ts() + 1
        raise RateLimited(
            f"Too many tips from {who}: at most {limit} in {window // 60} minutes. "
            f"Try again in {max(1, retry)} s.", code="tip_velocity", retry_after=retry)


def apply_card_rule(session: Session, tip: Tip, fingerprint: str | None,
                    rules: TipRules) -> None:
    """Record the card paying ``tip`` and refuse it over the per-card velocity."""
    if fingerprint is None:
        return
    if rules.per_card is not None:
        _check_velocity(session, Tip.card_fingerprint == fingerprint, rules.per_card,
                        "this card")
    tip.card_fingerprint = fingerprint
    session.flush()


def payment_metadata(tip: Tip, creator: Creator) -> dict[str, str]:
    """What we put on the PaymentIntent so every later event leads back to the tip."""
    return {
        "creatorpay_kind": "tip",
        "tip_id": tip.public_id,
        "creator_id": creator.public_id,
    }


def _advance_payment(tip: Tip, status: str) -> None:
    if PAYMENT_RANK[status] > PAYMENT_RANK[tip.payment_status] or (
        tip.payment_status == "failed" and status != "requires_payment"
    ):
        tip.payment_status = status
        if status == "succeeded" and tip.succeeded_at is None:
            tip.succeeded_at = now_ts()


def apply_payment_intent(session: Session, tip: Tip, intent: dict[str, Any]) -> Tip:
    """Record what a PaymentIntent says (our own API answer or an event), moving only forward."""
    if tip.payment_intent_id is None:
        tip.payment_intent_id = intent["id"]
    if intent.get("client_secret") and not tip.client_secret:
        tip.client_secret = intent["client_secret"]
    status = PI_STATUS.get(intent.get("status", ""), "requires_payment")
    next_action = intent.get("next_action")
    tip.next_action = (
        next_action.get("type") if isinstance(next_action, dict) and status == "requires_payment"
        else None
    )
    error = intent.get("last_payment_error")
    if isinstance(error, dict) and status in ("requires_payment", "failed"):
        tip.failure_code = error.get("decline_code") or error.get("code")
        tip.failure_message = error.get("message")
        if intent.get("status") == "requires_payment_method":
            status = "failed"
    _advance_payment(tip, status)
    session.flush()
    return tip


def record_decline(session: Session, tip: Tip, code: str, message: str) -> Tip:
    tip.failure_code = code
    tip.failure_message = message[:500]
    _advance_payment(tip, "failed")
    session.flush()
    return tip


# ----------------------------------------------------------------------------- reading


def _tip_by_public_id(session: Session, public_id: str, lock: bool = False) -> Tip | None:
    stmt = select(Tip).where(Tip.public_id == public_id)
    return session.scalar(for_update(session, stmt) if lock else stmt)


def get_tip(session: Session, public_id: str, viewer: Viewer) -> Tip:
    """The tip, if the viewer is its fan, its creator or an admin; otherwise 404."""
    tip = _tip_by_public_id(session, public_id)
    if tip is None or not (
        viewer.role == "admin"
        or (viewer.role == "creator" and tip.creator_id == viewer.owner_id)
        or (viewer.role == "fan" and tip.fan_id is not None and tip.fan_id == viewer.owner_id)
    ):
        raise NotFound("No such tip.", code="tip_not_found")
    return tip


def list_creator_tips(
    session: Session, creator_id: int, limit: int, starting_after: str | None
) -> tuple[list[Tip], bool]:
    stmt = select(Tip).where(Tip.creator_id == creator_id).order_by(Tip.id.desc())
    if starting_after:
        anchor = session.scalar(
            select(Tip.id).where(Tip.public_id == starting_after, Tip.creator_id == creator_id)
        )
        if anchor is None:
            raise NotFound("No such tip to start after.", param="starting_after")
        stmt = stmt.where(Tip.id < anchor)
    rows = list(session.scalars(stmt.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def tip_view(session: Session, tip: Tip, viewer: Viewer) -> dict[str, Any]:
    """The tip as the API shows it to ``viewer``; an anonymous tip hides the tipper from all
    but the tipper themselves."""
    creator = session.get(Creator, tip.creator_id)
    assert creator is not None
    tipper: dict[str, Any] | None = None
    is_tipper = viewer.role == "fan" and viewer.owner_id == tip.fan_id
    if not tip.anonymous or is_tipper:
        if tip.fan_id is not None:
            fan = session.get(Fan, tip.fan_id)
            assert fan is not None
            tipper = {"type": "fan", "id": fan.public_id, "name": fan.display_name}
            if viewer.role in ("admin",) or is_tipper:
                tipper["email"] = fan.email
        else:
            tipper = {"type": "guest", "name": tip.guest_name}
            if viewer.role == "admin":
                tipper["email"] = tip.guest_email
    refunds = session.scalars(
        select(TipRefund).where(TipRefund.tip_id == tip.id).order_by(TipRefund.id)
    ).all()
    body: dict[str, Any] = {
        "id": tip.public_id,
        "object": "tip",
        "creator": creator.public_id,
        "creator_handle": creator.handle,
        "amount": tip.amount,
        "currency": tip.currency,
        "message": tip.message,
        "anonymous": tip.anonymous,
        "tipper": tipper,
        "status": status_of(tip),
        "amount_refunded": tip.amount_refunded,
        "refunds": [
            {"id": r.public_id, "amount": r.amount, "status": r.status, "reason": r.reason,
             "created": r.created}
            for r in refunds
        ],
        "dispute": (
            {"id": tip.dispute_id, "status": tip.dispute_status, "amount": tip.dispute_amount}
            if tip.dispute_id else None
        ),
        "payment_intent": tip.payment_intent_id,
        "next_action": tip.next_action,
        "failure_code": tip.failure_code,
        "failure_message": tip.failure_message,
        "created": tip.created,
    }
    # Only the payer needs the client secret (to finish paying with Stripe.js).
    if tip.payment_status in ("requires_payment", "failed") and (
        is_tipper or viewer.role == "guest"
    ):
        body["client_secret"] = tip.client_secret
    return body


def goal_progress(session: Session, creator: Creator) -> int:
    """Succeeded tips in the creator's default currency, net of refunds."""
    total = session.scalar(
        select(func.coalesce(func.sum(Tip.amount - Tip.amount_refunded), 0)).where(
            Tip.creator_id == creator.id,
            Tip.currency == creator.default_currency,
            Tip.payment_status == "succeeded",
            Tip.dispute_id.is_(None),
        )
    )
    return int(total or 0)


# ----------------------------------------------------------------------------- refunds


def refundable(session: Session, tip: Tip) -> int:
    asked = session.scalar(
        select(func.coalesce(func.sum(TipRefund.amount), 0)).where(
            TipRefund.tip_id == tip.id, TipRefund.status.in_(("pending", "succeeded"))
        )
    )
    return tip.amount - max(int(asked or 0), tip.amount_refunded)


def request_refund(
    session: Session, tip: Tip, amount: int | None, reason: str | None, requested_by: str
) -> TipRefund:
    if tip.payment_status != "succeeded" or tip.charge_id is None and tip.payment_intent_id is None:
        raise InvalidTransition(
            f"A tip that is {status_of(tip)} cannot be refunded.", code="invalid_transition"
        )
    if tip.dispute_id is not None:
        raise InvalidTransition("A disputed tip cannot be refunded.", code="invalid_transition")
    left = refundable(session, tip)
    if left <= 0:
        raise InvalidTransition("The tip is already fully refunded.", code="invalid_transition")
    amount = left if amount is None else amount
    if amount > left:
        raise InvalidRequest(
            f"At most {left} can still be refunded.", code="amount_too_large", param="amount"
        )
    refund = TipRefund(
        tip_id=tip.id, amount=amount, reason=reason, status="pending", requested_by=requested_by
    )
    session.add(refund)
    session.flush()
    return refund


def refund_answered(session: Session, refund: TipRefund, stripe_refund: dict[str, Any]) -> None:
    """Stripe answered our refund request: link it; the ledger follows from its event."""
    refund.stripe_refund_id = stripe_refund["id"]
    refund.status = stripe_refund.get("status") or refund.status
    session.flush()
    tip = session.get(Tip, refund.tip_id)
    assert tip is not None
    _sync_refunded(session, tip)


def _sync_refunded(session: Session, tip: Tip) -> None:
    """``amount_refunded`` follows the refunds Stripe reports succeeded (never decreasing)."""
    total = session.scalar(
        select(func.coalesce(func.sum(TipRefund.amount), 0)).where(
            TipRefund.tip_id == tip.id, TipRefund.status == "succeeded"
        )
    )
    tip.amount_refunded = max(tip.amount_refunded, int(total or 0))
    session.flush()


def refund_failed(session: Session, refund: TipRefund, message: str) -> None:
    refund.status = "failed"
    refund.reason = (refund.reason or "") + f" [failed: {message[:150]}]"
    session.flush()


# ----------------------------------------------------------------------------- events


def find_tip(session: Session, obj: dict[str, Any]) -> Tip | None:
    """The tip a Stripe object belongs to, by metadata, then PaymentIntent, then charge."""
    metadata = obj.get("metadata") or {}
    tip_id = metadata.get("tip_id") if isinstance(metadata, dict) else None
    if tip_id:
        return _tip_by_public_id(session, tip_id, lock=True)
    pi = obj.get("payment_intent") if obj.get("object") != "payment_intent" else obj.get("id")
    if isinstance(pi, dict):
        pi = pi.get("id")
    charge = obj.get("charge") if obj.get("object") != "charge" else obj.get("id")
    if isinstance(charge, dict):
        charge = charge.get("id")
    # Events of one tip are applied one at a time: the row lock orders concurrent workers.
    for column, value in ((Tip.payment_intent_id, pi), (Tip.charge_id, charge)):
        if value:
            found: Tip | None = session.scalar(
                for_update(session, select(Tip).where(column == value)))
            if found is not None:
                return found
    return None


def _check_currency(tip: Tip, txn: dict[str, Any]) -> None:
    if txn["currency"] != tip.currency:
        # Stripe settles in the account's currency when it differs from the charge's; we
        # keep creator balances in the charge currency and do not convert silently.
        raise ValueError(
            f"balance transaction {txn['id']} settled in {txn['currency']}, tip in {tip.currency}"
        )


def charge_succeeded(
    session: Session, tip: Tip, charge: dict[str, Any], txn: dict[str, Any], fee_rate: Decimal
) -> list[ledger.JournalSpec]:
    """A captured charge: the tip has succeeded; the journals of its money, for post_many.

    Gross and Stripe's fee come from the charge's balance transaction; the platform fee is
    ``fee_rate`` of the gross, split with ``allocate()``.
    """
    _check_currency(tip, txn)
    tip.charge_id = tip.charge_id or charge["id"]
    if tip.payment_intent_id is None and isinstance(charge.get("payment_intent"), str):
        tip.payment_intent_id = charge["payment_intent"]
    _advance_payment(tip, "succeeded")
    refunded_total = stripe_int(charge.get("amount_refunded") or 0, "amount_refunded")
    if refunded_total > tip.amount_refunded:
        tip.amount_refunded = refunded_total
    gross = stripe_int(txn["amount"])
    platform_fee, _ = split_fee(gross, fee_rate)
    return ledger.earning_journals(
        tip.creator_id,
        tip.currency,
        gross=gross,
        processor_fee=stripe_int(txn["fee"], "fee"),
        platform_fee=platform_fee,
        key=earning_key(tip),
        kind="tip",
        source=("tip", tip.public_id),
        effective_at=stripe_int(txn["created"], "created"),
    )


def earning_key(tip: Tip) -> str:
    return f"tip:{tip.public_id}"


def earning_posted(session: Session, tip: Tip) -> bool:
    return ledger.journal_by_key(session, earning_key(tip)) is not None


def _take_from_creator(
    session: Session, tip: Tip, amount: int
) -> list[ledger.Leg]:
    """Debit ``amount`` from the creator: what is still pending for this tip first, then
    available (which may go negative: recovered from later earnings)."""
    source = ("tip", tip.public_id)
    pending = max(0, ledger.pending_for_source(session, tip.creator_id, tip.currency, source))
    from_pending = min(pending, amount)
    legs = []
    if from_pending:
        legs.append(ledger.debit(ledger.creator_account(tip.creator_id, "pending", tip.currency),
                                 from_pending))
    if amount - from_pending:
        legs.append(ledger.debit(
            ledger.creator_account(tip.creator_id, "available", tip.currency),
            amount - from_pending))
    return legs


def refund_settled(
    session: Session, tip: Tip, refund: dict[str, Any], txn: dict[str, Any], fee_rate: Decimal
) -> None:
    """A refund Stripe has made: take it back from the creator, proportionally.

    Stripe returns ``R`` to the fan out of our balance and keeps its processing fee. The
    platform gives back its fee on the refunded part (``fee_rate`` of ``R``); the creator
    bears the rest of ``R``.
    """
    _check_currency(tip, txn)
    row = session.scalar(select(TipRefund).where(TipRefund.stripe_refund_id == refund["id"]))
    meta = refund.get("metadata")
    ours: dict[str, Any] = meta if isinstance(meta, dict) else {}
    if row is None and ours.get("refund_id"):
        # Asked for through our API, its event ahead of our recording Stripe's answer: the
        # row is ours already (found by the id we put in the metadata), not a dashboard one.
        row = session.scalar(select(TipRefund).where(
            TipRefund.public_id == str(ours["refund_id"]), TipRefund.tip_id == tip.id))
        if row is not None:
            row.stripe_refund_id = refund["id"]
    if row is None:
        # Made outside our API (dashboard): record it so the tip lists it.
        row = TipRefund(
            tip_id=tip.id, stripe_refund_id=refund["id"], amount=stripe_int(refund["amount"]),
            reason=refund.get("reason"), status=refund.get("status") or "succeeded",
            requested_by="stripe",
        )
        session.add(row)
    else:
        row.status = refund.get("status") or row.status
    key = f"tip_refund:{refund['id']}"
    if ledger.journal_by_key(session, key) is not None:
        _sync_refunded(session, tip)
        return  # posted already; the pending/available split must not be recomputed
    refunded = -stripe_int(txn["amount"])
    platform_part, creator_part = split_fee(refunded, fee_rate)
    legs = _take_from_creator(session, tip, creator_part)
    if platform_part:
        legs.append(ledger.debit(ledger.platform_account("platform_revenue", tip.currency),
                                 platform_part))
    legs.append(ledger.credit(ledger.platform_account("stripe_balance", tip.currency), refunded))
    ledger.post(
        session, key, "refund", legs,
        source=("tip", tip.public_id), effective_at=stripe_int(txn["created"], "created"),
    )
    _sync_refunded(session, tip)


def charge_refunded(session: Session, tip: Tip, charge: dict[str, Any]) -> None:
    """``charge.refunded``: Stripe's running refunded total (never lowers ours)."""
    total = stripe_int(charge.get("amount_refunded") or 0, "amount_refunded")
    tip.amount_refunded = max(tip.amount_refunded, total)
    session.flush()


def dispute_changed(session: Session, tip: Tip, dispute: dict[str, Any]) -> None:
    """Record the dispute and post each of its balance transactions once.

    A withdrawal takes the disputed amount plus Stripe's dispute fee from the creator; a
    reinstatement (dispute won) gives back what Stripe returns.
    """
    if tip.dispute_id is None:
        tip.dispute_id = dispute["id"]
    if dispute["id"] != tip.dispute_id:
        raise Conflict(f"tip {tip.public_id} already has dispute {tip.dispute_id}")
    final = ("won", "lost")
    if tip.dispute_status not in final or dispute.get("status") in final:
        tip.dispute_status = dispute.get("status")
    tip.dispute_amount = stripe_int(dispute["amount"])
    for txn in dispute.get("balance_transactions") or []:
        if not isinstance(txn, dict):
            continue
        _check_currency(tip, txn)
        key = f"tip_dispute:{dispute['id']}:{txn['id']}"
        if ledger.journal_by_key(session, key) is not None:
            continue  # posted already; never recompute the split
        net = stripe_int(txn["net"], "net")
        stripe_balance = ledger.platform_account("stripe_balance", tip.currency)
        if net < 0:
            legs = _take_from_creator(session, tip, -net)
            legs.append(ledger.credit(stripe_balance, -net))
        elif net > 0:
            legs = [ledger.debit(stripe_balance, net),
                    ledger.credit(ledger.creator_account(tip.creator_id, "available",
                                                         tip.currency), net)]
        else:
            continue
        ledger.post(
            session, key, "dispute", legs,
            source=("tip", tip.public_id), effective_at=stripe_int(txn["created"], "created"),
        )
    session.flush()


def profile_fields(session: Session, creator: Creator) -> dict[str, Any]:
    """What tips add to the creator's public profile: progress towards the tip goal."""
    return {"goal_progress": goal_progress(session, creator)}
