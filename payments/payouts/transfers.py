"""The Stripe calls of payouts, for tasks (views go through ``payments.web.call_stripe``).

Each takes a committed payout, calls Stripe with our idempotency key, records the answer.
A transient failure leaves the payout as it was (``payouts.retry`` asks again with the same
key, so Stripe replays its first answer); a refusal returns the money to ``available``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from payments.accounts.models import Creator
from payments.gateway import Gateway, GatewayError, TransientGatewayError, idempotency_key
from payments.payouts import service
from payments.payouts.models import Payout


def transfer_key(payout: Payout) -> str:
    return idempotency_key("payout", payout.public_id)


def make_transfer(gateway: Gateway, session: Session, payout: Payout) -> None:
    """Create the payout's transfer; the caller commits before (the row) and after."""
    creator = session.get(Creator, payout.creator_id)
    assert creator is not None
    try:
        transfer = gateway.create_transfer(
            amount=payout.amount, currency=payout.currency, destination=payout.destination,
            idempotency_key=transfer_key(payout),
            metadata=service.transfer_metadata(payout, creator),
            transfer_group=payout.public_id, description=f"creatorpay payout {payout.public_id}")
    except TransientGatewayError:
        return  # retried by payouts.retry
    except GatewayError as exc:
        service.return_funds(session, payout, exc.code or "transfer_failed", exc.message)
        return
    service.transfer_answered(session, payout, transfer)


def reverse_transfer(gateway: Gateway, session: Session, payout: Payout) -> None:
    """After a failed connected-account payout: take the transfer back (its
    ``transfer.reversed`` event, or this answer, returns the money to ``available``)."""
    if payout.transfer_id is None or payout.status != "returning":
        return
    try:
        reversal = gateway.create_transfer_reversal(
            payout.transfer_id, idempotency_key=idempotency_key("payout", payout.public_id,
                                                                "reversal"),
            metadata={"creatorpay_kind": "payout", "payout_id": payout.public_id})
    except TransientGatewayError:
        return
    except GatewayError as exc:
        payout.failure_message = f"{payout.failure_message} (reversal refused: {exc.message})"
        return
    payout.reversal_id = reversal["id"]
    service.return_funds(session, payout, payout.failure_code or "payout_failed",
                         payout.failure_message or "The payout to the bank failed.")
