"""What a domain hands the webhook pipeline: the Stripe events it applies and how.

A domain's ``events.py`` exports ``EVENTS``, an :class:`EventRoutes`. The pipeline (which
knows no domain) claims a batch of inbox rows and, for each domain with routes for any of
them:

1. asks ``prepare(session, objects)`` to lock and load the domain's rows for the whole batch
   in one query (the answer is kept in ``ctx.loaded[domain name]``);
2. calls each row's handler with the session, the event's object and a
   :class:`EventContext` that fetches Stripe objects (prefetched per batch) and collects
   journals for one ``post_many`` per batch.

An object names its domain with ``metadata.creatorpay_kind``; a domain owns the kinds in its
``kinds``. An object without a kind (a refund made in the dashboard, a dispute, an invoice)
goes to every domain with a handler for its type, and each ignores what is not its own.

Handlers must be idempotent on business keys and move state only forward: events come
duplicated, late and in any order. A handler that cannot apply its event raises; the
pipeline marks that event ``failed`` with the reason and applies the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from payments.ledger.service import JournalSpec


class StripeSource(Protocol):
    """Stripe objects an event's handler may read (prefetched for the batch where it can)."""

    def balance_transaction(self, txn_id: str) -> dict[str, Any]: ...

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]: ...

    def retrieve_account(self, account_id: str) -> dict[str, Any]: ...

    def payout_transactions(self, payout_id: str, account: str) -> list[dict[str, Any]]:
        """The balance transactions a connected account's payout carried."""
        ...

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]: ...

    def invoice_charge(self, invoice_id: str) -> dict[str, Any]:
        """The charge that paid an invoice (``balance_transaction`` as an id)."""
        ...

    def payment_invoice(self, payment_intent_id: str) -> dict[str, Any] | None:
        """The invoice a PaymentIntent pays, if any (a dispute or refund of an invoice's
        charge that overtakes the invoice's own events)."""
        ...


@dataclass
class EventContext:
    stripe: StripeSource
    fee_rate: Decimal
    # Journals of the event being handled; the pipeline posts them with the batch.
    journals: list[JournalSpec] = field(default_factory=list)
    # What each domain's ``prepare`` loaded (and locked) for the batch, by domain name.
    loaded: dict[str, Any] = field(default_factory=dict)
    # The ``created`` of the event being handled (Stripe's time), to tell stale state.
    event_created: int = 0
    # The connected account an event is about (its top-level ``account``), if any.
    event_account: str | None = None

    def add(self, specs: Iterable[JournalSpec]) -> None:
        self.journals.extend(specs)


Handler = Callable[[Session, dict[str, Any], EventContext], None]
Prepare = Callable[[Session, list[dict[str, Any]]], Any]


@dataclass(frozen=True)
class Route:
    handler: Handler
    # True when the handler reads ledger balances, so everything collected earlier in the
    # batch must be posted before it runs.
    reads_ledger: bool = False
    # True when the handler acts only on objects carrying one of its domain's kinds (objects
    # we created): an object with no kind is then not this route's, and an event no route
    # wants is not stored at all (a renewal's PaymentIntent and charge events, made by
    # Stripe's invoice with no metadata of ours, never reach the inbox).
    own_kinds_only: bool = False


def payment_routes(on_payment_intent: Handler, on_charge_succeeded: Handler
                   ) -> dict[str, Route]:
    """The PaymentIntent and charge events of payments a domain makes itself (tips, deal
    fundings): each handler acts only on objects of the domain's own kinds."""
    intents = ("succeeded", "processing", "payment_failed", "requires_action", "canceled")
    routes = {f"payment_intent.{s}": Route(on_payment_intent, own_kinds_only=True)
              for s in intents}
    for event_type in ("charge.succeeded", "charge.captured"):
        routes[event_type] = Route(on_charge_succeeded, own_kinds_only=True)
    return routes


def _no_preparation(session: Session, objects: list[dict[str, Any]]) -> None:
    return None


def _none_held(loaded: Any, obj: dict[str, Any]) -> bool:
    return False


def _no_transactions(event_type: str, obj: dict[str, Any]) -> list[str]:
    return []


def _no_invoices(event_type: str, obj: dict[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class EventRoutes:
    """One domain's part of the pipeline."""

    # ``metadata.creatorpay_kind`` values this domain owns (objects it created in Stripe).
    kinds: frozenset[str]
    # Stripe event type -> how to apply it.
    routes: Mapping[str, Route]
    # Lock and load the domain's rows for a batch's objects (one query, in id order).
    prepare: Prepare = _no_preparation
    # ``prepare`` that skips rows another transaction holds instead of waiting for them
    # (``FOR UPDATE SKIP LOCKED``); ``held(loaded, obj)`` then names the objects whose rows
    # it skipped, and the pipeline leaves their events for a later batch. For domains whose
    # objects come in bursts of events (a renewal's seven), so that two workers never wait
    # on each other's batches for the one object their batches share.
    prepare_skipping: Prepare | None = None
    held: Callable[[Any, dict[str, Any]], bool] = _none_held
    # Balance transactions a handler will ask for, so the batch fetches them together.
    transaction_ids: Callable[[str, dict[str, Any]], list[str]] = _no_transactions
    # Invoices whose paying charge a handler will ask for (``invoice_charge``), likewise.
    invoice_ids: Callable[[str, dict[str, Any]], list[str]] = _no_invoices


def kind_of(obj: Any) -> str | None:
    """The ``creatorpay_kind`` an object carries in its metadata, if any."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    kind = meta.get("creatorpay_kind") if isinstance(meta, dict) else None
    return kind if isinstance(kind, str) else None


def expandable_id(value: Any) -> str | None:
    """An id from a Stripe field that may hold the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def stripe_int(value: Any, what: str = "amount") -> int:
    """An integer field of a Stripe object; anything else (a float, a string) is refused.

    ``int()`` would truncate ``12.5`` or parse ``"12"``: money read from a payload that is not
    what Stripe sends must fail its event, not be guessed at.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} is {value!r}, not an integer")
    return value
