"""Payouts: plain functions over the session (no Stripe here; see ``transfers``).

A payout moves a creator's ``available`` money to ``in_transit`` under the account lock
(``ledger.debit_available``), in one journal ``payout:{po}`` that also credits
``stripe_balance`` (the transfer leaves the platform's Stripe balance) and debits the
``payouts_in_transit`` clearing account. The connected account's payout settles it:
``payout_paid:{po}`` moves ``in_transit`` to ``paid_out`` (and clears the clearing account
into the ``payouts_paid`` memo). A refused or reversed transfer posts the reversal
``payout_return:{po}``: the money is back in ``available``, the reason on the payout.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payments.accounts.models import Creator
from payments.clock import now_ts
from payments.db import for_update, one_of
from payments.errors import Conflict, InsufficientBalance, InvalidRequest, NotFound
from payments.ledger import service as ledger
from payments.ledger.models import LedgerAccount
from payments.money import CURRENCIES
from payments.payouts.models import SCHEDULES, Payout

TERMINAL = ("paid", "failed")


def minimum(minimums: Mapping[str, int], currency: str) -> int:
    """The smallest payout in ``currency`` (the config's table, else 20x Stripe's minimum)."""
    found = minimums.get(currency)
    return int(found) if found else CURRENCIES[currency].min_charge * 20


def available(session: Session, creator_id: int, currency: str, *, lock: bool = False) -> int:
    """The creator's ``available`` balance (positive = payable), optionally row-locked."""
    stmt = select(LedgerAccount.balance).where(
        LedgerAccount.owner_kind == "creator", LedgerAccount.owner_id == creator_id,
        LedgerAccount.purpose == "available", LedgerAccount.currency == currency)
    balance = session.scalar(for_update(session, stmt) if lock else stmt)
    return -int(balance or 0)


# ----------------------------------------------------------------------------- settings


def settings_view(creator: Creator, minimums: Mapping[str, int]) -> dict[str, Any]:
    return {
        "schedule": creator.payout_schedule,
        "payouts_enabled": bool(creator.payouts_enabled),
        "stripe_account_id": creator.stripe_account_id,
        "minimum": {"amount": minimum(minimums, creator.default_currency),
                    "currency": creator.default_currency},
    }


def update_schedule(session: Session, creator: Creator, schedule: str) -> Creator:
    if schedule not in SCHEDULES:
        raise InvalidRequest(f"schedule must be one of {', '.join(SCHEDULES)}.",
                             code="invalid_schedule", param="schedule")
    creator.payout_schedule = schedule
    session.flush()
    return creator


def record_account(session: Session, account: dict[str, Any]) -> Creator | None:
    """What ``account.updated`` tells us: can the creator's connected account take payouts?

    ``account`` is the account as Stripe has it now (fetched, not the event's copy), so
    events applied late or twice record the same thing.
    """
    creator = session.scalar(for_update(session, select(Creator).where(
        Creator.stripe_account_id == account["id"])))
    if creator is None:
        return None
    caps = account.get("capabilities") or {}
    creator.payouts_enabled = bool(account.get("payouts_enabled")) and (
        caps.get("transfers") == "active")
    session.flush()
    return creator


# ----------------------------------------------------------------------------- requesting


def check_amount(minimums: Mapping[str, int], currency: str, amount: int | None) -> None:
    """Input checks (400), before any balance is looked at."""
    low = minimum(minimums, currency)
    if amount is not None and amount < low:
        raise InvalidRequest(f"The smallest payout in {currency} is {low}.",
                             code="amount_too_small", param="amount")


def create_payout(
    session: Session,
    creator: Creator,
    currency: str,
    amount: int | None,
    minimums: Mapping[str, int],
    *,
    automatic: bool = False,
    schedule_key: str | None = None,
) -> Payout:
    """Take ``amount`` (default: everything available) out of ``available`` into a payout.

    409 ``payouts_not_enabled`` when the connected account cannot take payouts, 409
    ``insufficient_balance`` when less than ``amount`` (or than the minimum) is available.
    The caller commits, then makes the transfer (``transfers.submit``).
    """
    check_amount(minimums, currency, amount)
    if creator.stripe_account_id is None or not creator.payouts_enabled:
        raise Conflict("The creator's connected account cannot take payouts yet "
                       "(finish onboarding: POST /v1/creators/me/connect).",
                       code="payouts_not_enabled")
    held = available(session, creator.id, currency, lock=True)
    low = minimum(minimums, currency)
    want = held if amount is None else amount
    if want > held or want < low:
        raise InsufficientBalance(
            f"{held} {currency} is available; a payout needs "
            f"{max(want, low) if amount is not None else low}.",
            extra={"available": held, "currency": currency, "minimum": low})
    payout = Payout(creator_id=creator.id, amount=want, currency=currency, status="pending",
                    automatic=automatic, schedule_key=schedule_key,
                    destination=creator.stripe_account_id, created=now_ts())
    session.add(payout)
    session.flush()
    journal = ledger.debit_available(
        session, f"payout:{payout.public_id}", "payout",
        ledger.creator_account(creator.id, "available", currency), want,
        [ledger.credit(ledger.platform_account("stripe_balance", currency), want),
         ledger.debit(ledger.platform_account("payouts_in_transit", currency), want),
         ledger.credit(ledger.creator_account(creator.id, "in_transit", currency), want)],
        source=("payout", payout.public_id), effective_at=payout.created)
    payout.journal_id = journal.id
    session.flush()
    return payout


def transfer_metadata(payout: Payout, creator: Creator) -> dict[str, str]:
    return {"creatorpay_kind": "payout", "payout_id": payout.public_id,
            "creator_id": creator.public_id}


def transfer_answered(session: Session, payout: Payout, transfer: dict[str, Any]) -> Payout:
    """Stripe made the transfer (our call's answer or ``transfer.*``): link it."""
    payout.transfer_id = payout.transfer_id or transfer["id"]
    dest = transfer.get("destination_payment")
    if isinstance(dest, dict):
        dest = dest.get("id")
    if isinstance(dest, str) and payout.destination_payment is None:
        payout.destination_payment = dest
    if payout.transfer_created is None and isinstance(transfer.get("created"), int):
        payout.transfer_created = transfer["created"]
    if payout.status == "pending":
        payout.status = "in_transit"
    reversed_amount = transfer.get("amount_reversed") or 0
    if isinstance(reversed_amount, int) and reversed_amount >= payout.amount > 0:
        reversals = (transfer.get("reversals") or {}).get("data") or []
        if reversals and payout.reversal_id is None:
            payout.reversal_id = reversals[0].get("id")
        return_funds(session, payout, payout.failure_code or "transfer_reversed",
                     payout.failure_message or "The transfer was reversed.")
    session.flush()
    return payout


def return_funds(session: Session, payout: Payout, code: str, message: str) -> Payout:
    """The transfer was refused or reversed: the money goes back to ``available``."""
    if payout.status == "failed":
        return payout
    if payout.status == "paid":
        raise Conflict(f"payout {payout.public_id} is paid; it cannot be returned",
                       code="invalid_transition")
    if payout.journal_id is not None:
        ledger.reverse(session, payout.journal_id, key=f"payout_return:{payout.public_id}",
                       kind="payout", effective_at=now_ts())
    payout.status = "failed"
    payout.failure_code = code[:100]
    payout.failure_message = message[:500]
    payout.failed_at = now_ts()
    session.flush()
    return payout


def settle_paid(session: Session, payout: Payout, stripe_payout: dict[str, Any]) -> Payout:
    """The connected account's payout arrived: ``in_transit`` -> ``paid_out``."""
    if payout.status in TERMINAL or payout.status == "returning":
        return payout
    cur, cid, amount = payout.currency, payout.creator_id, payout.amount
    at = stripe_payout.get("arrival_date") or now_ts()
    ledger.post(session, f"payout_paid:{payout.public_id}", "payout", [
        ledger.debit(ledger.creator_account(cid, "in_transit", cur), amount),
        ledger.credit(ledger.platform_account("payouts_in_transit", cur), amount),
        ledger.debit(ledger.platform_account("payouts_paid", cur), amount),
        ledger.credit(ledger.creator_account(cid, "paid_out", cur), amount),
    ], source=("payout", payout.public_id), effective_at=int(at))
    payout.status = "paid"
    payout.stripe_payout_id = stripe_payout["id"]
    payout.paid_at = int(at)
    session.flush()
    return payout


def connected_payout_failed(session: Session, payout: Payout,
                            stripe_payout: dict[str, Any]) -> Payout:
    """The connected account's payout failed: the money sits in the creator's Stripe account.
    We reverse the transfer (``transfers.retry``), and its ``transfer.reversed`` returns it."""
    if payout.status in ("in_transit", "pending"):
        payout.status = "returning"
        payout.stripe_payout_id = stripe_payout["id"]
        payout.failure_code = str(stripe_payout.get("failure_code") or "payout_failed")[:100]
        payout.failure_message = str(stripe_payout.get("failure_message")
                                     or "The payout to the bank failed.")[:500]
        session.flush()
    return payout


def payouts_for_payments(session: Session, payment_ids: list[str]) -> list[Payout]:
    if not payment_ids:
        return []
    stmt = select(Payout).where(one_of(session, Payout.destination_payment, payment_ids))
    return list(session.scalars(for_update(session, stmt.order_by(Payout.id))))


# ----------------------------------------------------------------------------- reading


def get_payout(session: Session, public_id: str, *, lock: bool = False) -> Payout | None:
    stmt = select(Payout).where(Payout.public_id == public_id)
    return session.scalar(for_update(session, stmt) if lock else stmt)


def creator_payout(session: Session, creator_id: int, public_id: str) -> Payout:
    payout = get_payout(session, public_id)
    if payout is None or payout.creator_id != creator_id:
        raise NotFound("No such payout.", code="payout_not_found")
    return payout


def list_payouts(session: Session, creator_id: int, limit: int,
                 starting_after: str | None) -> tuple[list[Payout], bool]:
    stmt = select(Payout).where(Payout.creator_id == creator_id).order_by(Payout.id.desc())
    if starting_after:
        anchor = session.scalar(select(Payout.id).where(
            Payout.public_id == starting_after, Payout.creator_id == creator_id))
        if anchor is None:
            raise NotFound("No such payout to start after.", param="starting_after")
        stmt = stmt.where(Payout.id < anchor)
    rows = list(session.scalars(stmt.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def payout_view(payout: Payout) -> dict[str, Any]:
    return {
        "id": payout.public_id, "object": "payout", "amount": payout.amount,
        "currency": payout.currency, "status": payout.status, "automatic": payout.automatic,
        "destination": payout.destination, "transfer": payout.transfer_id,
        "stripe_payout": payout.stripe_payout_id, "failure_code": payout.failure_code,
        "failure_message": payout.failure_message, "created": payout.created,
        "paid_at": payout.paid_at, "failed_at": payout.failed_at,
    }


def to_submit(session: Session, older_than: int, limit: int = 100) -> list[int]:
    """Payouts whose transfer is not confirmed yet (Stripe was unreachable when asked)."""
    return list(session.scalars(select(Payout.id).where(
        Payout.status == "pending", Payout.transfer_id.is_(None),
        Payout.created <= older_than).order_by(Payout.id).limit(limit)))


def to_reverse(session: Session, limit: int = 100) -> list[int]:
    return list(session.scalars(select(Payout.id).where(
        Payout.status == "returning", Payout.reversal_id.is_(None),
        Payout.transfer_id.is_not(None)).order_by(Payout.id).limit(limit)))


# ----------------------------------------------------------------------------- schedule


def schedule_due(schedule: str, now: int) -> bool:
    """Daily: every day; weekly: Mondays; monthly: the 1st (UTC, business clock)."""
    day = datetime.fromtimestamp(now, UTC)
    return (schedule == "daily" or (schedule == "weekly" and day.weekday() == 0)
            or (schedule == "monthly" and day.day == 1))


def run_schedule(session: Session, minimums: Mapping[str, int], *,
                 now: int | None = None) -> list[int]:
    """Make today's automatic payouts: every creator whose schedule is due, per currency
    whose ``available`` reached its minimum. At most one per creator, currency and day."""
    now = now_ts() if now is None else now
    today = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    made: list[int] = []
    creators = session.scalars(select(Creator).where(
        Creator.payouts_enabled.is_(True), Creator.stripe_account_id.is_not(None),
        Creator.payout_schedule != "manual").order_by(Creator.id)).all()
    for creator in creators:
        if not schedule_due(creator.payout_schedule, now):
            continue
        rows = session.execute(select(LedgerAccount.currency, LedgerAccount.balance).where(
            LedgerAccount.owner_kind == "creator", LedgerAccount.owner_id == creator.id,
            LedgerAccount.purpose == "available")).all()
        for currency, balance in rows:
            if -int(balance) < minimum(minimums, currency):
                continue
            key = f"auto:{creator.public_id}:{currency}:{today}"
            if session.scalar(select(Payout.id).where(Payout.schedule_key == key)):
                continue
            try:
                with session.begin_nested():
                    payout = create_payout(session, creator, currency, None, minimums,
                                           automatic=True, schedule_key=key)
            except (InsufficientBalance, Conflict):
                continue
            made.append(payout.id)
    return made

