"""The Stripe events of payouts: transfers we made, the connected accounts' payouts and
their ``account.updated`` (see ``payments.events``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from payments.events import EventContext, EventRoutes, Route, expandable_id, kind_of
from payments.payouts import service

KINDS = frozenset({"payout"})


def on_account(session: Session, account: dict[str, Any], ctx: EventContext) -> None:
    if not str(account.get("id", "")).startswith("acct_"):
        return
    # The account as it is now, not the event's copy: late or repeated events agree.
    service.record_account(session, ctx.stripe.retrieve_account(account["id"]))


def on_transfer(session: Session, transfer: dict[str, Any], ctx: EventContext) -> None:
    if kind_of(transfer) != "payout":
        return
    payout = service.get_payout(session, str(transfer["metadata"].get("payout_id", "")),
                                lock=True)
    if payout is None:
        raise LookupError(f"payout {transfer['metadata'].get('payout_id')} of "
                          f"{transfer.get('id')} not found")
    service.transfer_answered(session, payout, transfer)


def on_connected_payout(session: Session, payout: dict[str, Any], ctx: EventContext) -> None:
    """A connected account's payout paid or failed: settle the transfers it carried."""
    status = payout.get("status")
    account = ctx.event_account
    if status not in ("paid", "failed") or account is None:
        return
    payments = [expandable_id(t.get("source")) or ""
                for t in ctx.stripe.payout_transactions(payout["id"], account)
                if t.get("type") == "payment"]
    for ours in service.payouts_for_payments(session, [p for p in payments if p]):
        if status == "paid":
            service.settle_paid(session, ours, payout)
        else:
            service.connected_payout_failed(session, ours, payout)


EVENTS = EventRoutes(
    kinds=KINDS,
    routes={
        "account.updated": Route(on_account),
        "transfer.created": Route(on_transfer),
        "transfer.updated": Route(on_transfer),
        "transfer.reversed": Route(on_transfer, reads_ledger=True),
        "payout.paid": Route(on_connected_payout),
        "payout.failed": Route(on_connected_payout),
        "payout.updated": Route(on_connected_payout),
    },
)
