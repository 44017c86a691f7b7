"""The worker side of the inbox: claim a batch, apply each event, post, mark, commit.

One transaction per batch, not per event: handlers collect journals and the batch posts them
with one ``post_many``. Each domain locks its own rows for the batch with one query (its
``prepare``), and the batch's balance transactions are fetched a page of 100 at a time. A
batch is first applied in one savepoint with no per-event overhead; if any event raises,
that savepoint is rolled back and the batch is applied again with each event in its own
savepoint, so one bad event is marked ``failed`` (or, for a transient error, retried later)
and the rest of the batch still lands. Should the batch's final posting be refused, the
batch is rolled back and replayed one event per transaction, isolating the culprit.

Nothing an event carries can stop the queue: a Stripe error while fetching one event's
objects belongs to that event alone, a malformed payload fails its own row, and only
trouble no event causes (the database away, Stripe refusing our key, the time limit) ends
a drain early, to be retried.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from payments import logs
from payments.clock import now_ts
from payments.config import Config
from payments.db import one_of, session_scope
from payments.events import EventContext, kind_of
from payments.gateway import Gateway, GatewayError, TransientGatewayError, gateway_for
from payments.ledger import service as ledger
from webhooks import inbox
from webhooks.models import PROCESSED, RECEIVED, WebhookEvent
from webhooks.routes import RouteTable, route_table

log = logging.getLogger(__name__)

BATCH_SIZE = 200
# With this many balance transactions to fetch, list them by time range instead of one by one.
LIST_THRESHOLD = 20
# The listing window around the batch's event times. A charge's balance transaction is made
# with (just before) its event; older ones (a late refund.updated) are fetched by id.
LIST_BEFORE = 60
LIST_AFTER = 1
# Pages read per 100 wanted before giving up on the listing and fetching the rest by id.
LIST_PAGES_PER_100 = 5
# Balance transactions remembered per process (the amounts we read from them never change).
CACHE_MAX = 50_000
# An invoice payment expanded to the charge that paid it.
INVOICE_CHARGE_EXPAND = "data.payment.payment_intent.latest_charge"
BACKFILL_CURSOR = "stripe_events"
# Events can be created slightly out of order; re-read this far behind the cursor.
BACKFILL_OVERLAP = 300


# Per gateway, in this process: balance transactions already read, kept across drain tasks
# (a page listed for one batch usually holds the next batch's transactions too).
_TXN_CACHES: weakref.WeakKeyDictionary[Gateway, dict[str, dict[str, Any]]] = (
    weakref.WeakKeyDictionary())


class StripeReader:
    """Balance transactions and charges for one drain, fetched once each.

    A terminal answer (a 404) is remembered for the current batch only and raised to the
    handler that asks for that object, so it fails that event and no other; a transient one
    is never remembered (the handler asks again, and its event retries with backoff). The
    next batch, a replay included, asks Stripe afresh.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.txns = _TXN_CACHES.setdefault(gateway, {})
        self.errors: dict[str, Exception] = {}
        # Invoice id -> the charge that paid it (or the error fetching it), for this drain.
        self.invoice_charges: dict[str, dict[str, Any] | Exception] = {}

    def prefetch(self, txn_ids: Iterable[str], created_range: tuple[int, int]) -> None:
        missing = {t for t in txn_ids if t not in self.txns and t not in self.errors}
        if len(missing) >= LIST_THRESHOLD:
            try:
                self._list(missing, created_range)
            except (GatewayError, TransientGatewayError) as exc:
                # Listing is only a shortcut: fetch each by id, so each fails on its own.
                log.warning("listing balance transactions failed (%s); fetching by id", exc)
        if missing:
            with ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
                for txn_id, found in pool.map(self._fetch, sorted(missing)):
                    if isinstance(found, GatewayError):
                        self.errors[txn_id] = found
                    elif not isinstance(found, Exception):
                        self.txns[txn_id] = found
                    # A transient error is not kept: the handler asks again, and its own
                    # failure (retried with backoff) is the event's.

    def _list(self, missing: set[str], created_range: tuple[int, int]) -> None:
        if len(self.txns) > CACHE_MAX:
            self.txns.clear()
        lo, hi = created_range
        # Newest first from just after the batch's last event: the pages hold the batch's own
        # transactions (and those of batches made at the same time), not everything created
        # since. Bounded, so a stray old transaction cannot make us read it all.
        after: str | None = None
        for _ in range(len(missing) // 100 * LIST_PAGES_PER_100 + LIST_PAGES_PER_100):
            page = self.gateway.list_balance_transactions(
                created_gte=lo - LIST_BEFORE, created_lt=hi + LIST_AFTER, limit=100,
                starting_after=after)
            for txn in page["data"]:
                self.txns[txn["id"]] = txn
                missing.discard(txn["id"])
            if not missing or not page["has_more"] or not page["data"]:
                break
            after = page["data"][-1]["id"]

    def _fetch(self, txn_id: str) -> tuple[str, dict[str, Any] | Exception]:
        try:
            return txn_id, self.gateway.retrieve_balance_transaction(txn_id)
        except (GatewayError, TransientGatewayError) as exc:
            return txn_id, exc

    def new_batch(self) -> None:
        """Forget the answers that may change: errors and unpaid invoices."""
        self.errors.clear()
        self.invoice_charges = {k: v for k, v in self.invoice_charges.items()
                                if not isinstance(v, Exception)}

    def balance_transaction(self, txn_id: str) -> dict[str, Any]:
        found = self.txns.get(txn_id)
        if found is None:
            if txn_id in self.errors:
                raise self.errors[txn_id]
            found = self.txns[txn_id] = self.gateway.retrieve_balance_transaction(txn_id)
        return found

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return self.gateway.retrieve_charge(charge_id)

    def retrieve_account(self, account_id: str) -> dict[str, Any]:
        return self.gateway.retrieve_account(account_id)

    def payout_transactions(self, payout_id: str, account: str) -> list[dict[str, Any]]:
        return list(self.gateway.iter_balance_transactions(payout=payout_id,
                                                           stripe_account=account))

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.gateway.retrieve_subscription(subscription_id)

    def _fetch_invoice_charge(self, invoice_id: str) -> tuple[str, dict[str, Any] | Exception]:
        try:
            pays = self.gateway.list_invoice_payments(
                invoice_id, expand=[INVOICE_CHARGE_EXPAND])
        except (GatewayError, TransientGatewayError) as exc:
            return invoice_id, exc
        for pay in pays["data"]:
            charge = _paid_charge(pay)
            if charge is not None:
                return invoice_id, charge
        return invoice_id, LookupError(f"invoice {invoice_id} has no paid charge")

    def _list_invoice_payments(self, missing: set[str], created_range: tuple[int, int]) -> None:
        """The paid invoice payments made around the batch's events, a page of 100 at a time
        (newest first, bounded like ``_list``): each names its invoice and, expanded, the
        paying charge. Charges of invoices not in the batch are kept for the next batches."""
        if len(self.invoice_charges) > CACHE_MAX:
            self.invoice_charges.clear()
        lo, hi = created_range
        after: str | None = None
        for _ in range(len(missing) // 100 * LIST_PAGES_PER_100 + LIST_PAGES_PER_100):
            page = self.gateway.list_paid_invoice_payments(
                created_gte=lo - LIST_BEFORE, created_lt=hi + LIST_AFTER, limit=100,
                starting_after=after, expand=[INVOICE_CHARGE_EXPAND])
            for pay in page["data"]:
                charge = _paid_charge(pay)
                invoice_id = pay.get("invoice")
                if charge is not None and isinstance(invoice_id, str):
                    self.invoice_charges.setdefault(invoice_id, charge)
                    missing.discard(invoice_id)
            if not missing or not page["has_more"] or not page["data"]:
                break
            after = page["data"][-1]["id"]

    def prefetch_invoices(self, invoice_ids: Iterable[str],
                          created_range: tuple[int, int]) -> None:
        """Fetch the charges of invoices (listed by time when there are many, else each in
        parallel) and then their balance transactions."""
        missing = {i for i in invoice_ids
                   if not isinstance(self.invoice_charges.get(i), dict)}
        if not missing:
            return
        wanted = sorted(missing)
        if len(missing) >= LIST_THRESHOLD:
            try:
                self._list_invoice_payments(missing, created_range)
            except (GatewayError, TransientGatewayError) as exc:
                # Only a shortcut: fetch each by id, so each fails on its own.
                log.warning("listing invoice payments failed (%s); fetching by id", exc)
        if missing:
            with ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
                for invoice_id, found in pool.map(self._fetch_invoice_charge, sorted(missing)):
                    self.invoice_charges[invoice_id] = found
        txn_ids = [str(c["balance_transaction"]) for i in wanted
                   for c in [self.invoice_charges.get(i)]
                   if isinstance(c, dict) and isinstance(c.get("balance_transaction"), str)]
        self.prefetch(txn_ids, created_range)

    def payment_invoice(self, payment_intent_id: str) -> dict[str, Any] | None:
        return self.gateway.invoice_of_payment_intent(payment_intent_id)

    def invoice_charge(self, invoice_id: str) -> dict[str, Any]:
        found = self.invoice_charges.get(invoice_id)
        if found is None or isinstance(found, LookupError):
            # Not fetched, or not paid when we asked: ask again.
            _, found = self._fetch_invoice_charge(invoice_id)
            self.invoice_charges[invoice_id] = found
        if isinstance(found, Exception):
            raise found
        return found


def _paid_charge(pay: dict[str, Any]) -> dict[str, Any] | None:
    """The charge of a paid invoice payment (expanded), if it is one."""
    intent = (pay.get("payment") or {}).get("payment_intent")
    charge = intent.get("latest_charge") if isinstance(intent, dict) else None
    return charge if pay.get("status") == "paid" and isinstance(charge, dict) else None


def is_infrastructure(exc: BaseException) -> bool:
    """Trouble no event causes, which must stop the drain rather than fail events: the
    database away, Stripe refusing our own key (401, or 403 for a restricted key), the
    task's soft time limit. The task retries with backoff; no attempt is counted."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | SoftTimeLimitExceeded):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, GatewayError) and exc.http_status in (401, 403)


def _post(session: Session, specs: Sequence[ledger.JournalSpec]) -> None:
    unique: dict[str, ledger.JournalSpec] = {}
    for spec in specs:
        unique.setdefault(spec.key, spec)
    if unique:
        ledger.post_many(session, list(unique.values()))


def _object(row: WebhookEvent) -> dict[str, Any] | None:
    data = row.payload.get("data") if isinstance(row.payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else None


class _Batch:
    """The rows of one batch with what their domains loaded for them."""

    def __init__(self, session: Session, rows: Sequence[WebhookEvent], reader: StripeReader,
                 fee_rate: Decimal, table: RouteTable, *, skip_held: bool = False) -> None:
        self.reader = reader
        self.fee_rate = fee_rate
        self.table = table
        self.rows: list[tuple[WebhookEvent, dict[str, Any]]] = []
        self.malformed: list[WebhookEvent] = []
        # Events whose rows another worker's batch holds: left waiting, untouched, for a
        # later batch (claimed again as soon as this one commits).
        self.deferred: list[WebhookEvent] = []
        for row in rows:
            obj = _object(row)
            if obj is None:
                self.malformed.append(row)
            else:
                self.rows.append((row, obj))
        self.loaded = self._prepare(session, skip_held=skip_held)
        if skip_held:
            self._defer_held(session)

    def _defer_held(self, session: Session) -> None:
        keep: list[tuple[WebhookEvent, dict[str, Any]]] = []
        for row, obj in self.rows:
            held = any(t.domain in self.loaded and t.routes.held(self.loaded[t.domain], obj)
                       for t in self.table.targets(row.type, obj))
            if held:
                self.deferred.append(row)
            else:
                keep.append((row, obj))
        if self.deferred and not keep:
            # Nothing else to do meanwhile: wait for those rows instead of claiming the same
            # events again and again.
            self.deferred = []
            self.loaded = self._prepare(session, skip_held=False)
            return
        self.rows = keep

    def _prepare(self, session: Session, *, skip_held: bool = False) -> dict[str, Any]:
        created = [r.stripe_created for r, _ in self.rows] or [now_ts()]
        txn_ids: list[str] = []
        invoice_ids: list[str] = []
        objects: dict[str, list[dict[str, Any]]] = {}
        for row, obj in self.rows:
            for target in self.table.targets(row.type, obj):
                objects.setdefault(target.domain, []).append(obj)
                txn_ids.extend(target.routes.transaction_ids(row.type, obj))
                invoice_ids.extend(target.routes.invoice_ids(row.type, obj))
        self.reader.prefetch(txn_ids, (min(created), max(created)))
        if invoice_ids:
            self.reader.prefetch_invoices(invoice_ids, (min(created), max(created)))
        loaded: dict[str, Any] = {}
        for name, routes in self.table.domains:
            if name not in objects:
                continue
            prepare = (routes.prepare_skipping if skip_held and routes.prepare_skipping
                       else routes.prepare)
            try:
                with session.begin_nested():
                    loaded[name] = prepare(session, objects[name])
            except Exception as exc:
                if is_infrastructure(exc):
                    raise
                # Only a shortcut: each handler then finds (and locks) its own rows.
                log.warning("%s could not prepare the batch (%s); handlers load their own",
                            name, exc)
        return loaded

    def context(self) -> EventContext:
        return EventContext(self.reader, self.fee_rate, loaded=self.loaded)

    def apply(self, session: Session, row: WebhookEvent, obj: dict[str, Any],
              ctx: EventContext, before_reading: list[ledger.JournalSpec]) -> None:
        """Every target's handler for one event; ``before_reading`` is posted first when a
        handler reads ledger balances."""
        with logs.context(event_id=row.stripe_id):
            self._apply(session, row, obj, ctx, before_reading)

    def _apply(self, session: Session, row: WebhookEvent, obj: dict[str, Any],
               ctx: EventContext, before_reading: list[ledger.JournalSpec]) -> None:
        ctx.event_created = row.stripe_created
        # A connected account's event names the account (its payouts, its account.updated).
        account = row.payload.get("account") if isinstance(row.payload, dict) else None
        ctx.event_account = account if isinstance(account, str) else None
        targets = self.table.targets(row.type, obj)
        kind = kind_of(obj)
        if not targets and kind is not None and kind not in self.table.owner_of_kind:
            # Ours (the key is creatorpay's), but no domain in this deployment owns it: a
            # worker older than the web tier, or a domain left out of the list.
            raise LookupError(f"no domain owns creatorpay_kind {kind!r}")
        for target in targets:
            if target.route.reads_ledger:
                # Everything collected so far (earlier events, earlier domains) first.
                if before_reading:
                    _post(session, before_reading)
                    before_reading.clear()
                if ctx.journals:
                    _post(session, ctx.journals)
                    ctx.journals.clear()
            target.route.handler(session, obj, ctx)
            if target.route.reads_ledger:
                _post(session, ctx.journals)
                ctx.journals.clear()
        log.debug("event %s (%s) applied", row.stripe_id, row.type)


def _mark_processed_all(session: Session, rows: Sequence[WebhookEvent]) -> None:
    """``inbox.mark_processed`` for every row, as one statement."""
    if not rows:
        return
    now = now_ts()
    session.execute(
        update(WebhookEvent)
        .where(one_of(session, WebhookEvent.id, [r.id for r in rows]))
        .values(status=PROCESSED, processed_at=now, last_error=None,
                attempts=WebhookEvent.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    for row in rows:  # keep the loaded objects in step without flushing them again
        session.expire(row)


def _apply_all(session: Session, batch: _Batch) -> None:
    """The whole batch with no savepoint per event; raises if any event does."""
    ctx = batch.context()
    for row, obj in batch.rows:
        batch.apply(session, row, obj, ctx, ctx.journals)
    _post(session, ctx.journals)
    _mark_processed_all(session, [r for r, _ in batch.rows])


def _settle_failure(row: WebhookEvent, exc: Exception) -> None:
    """Mark one event after its handler raised: retried later when it may pass, else failed."""
    with logs.context(event_id=row.stripe_id):
        _settle(row, exc)


def _settle(row: WebhookEvent, exc: Exception) -> None:
    if isinstance(exc, TransientGatewayError):
        log.warning("event %s: transient error, will retry: %s", row.stripe_id, exc)
        inbox.schedule_retry(row, f"transient: {type(exc).__name__}: {exc}")
    elif isinstance(exc, IntegrityError):
        # Most likely a concurrent worker wrote the same business key: try again later.
        log.warning("event %s: %s, will retry", row.stripe_id, exc.orig)
        inbox.schedule_retry(row, f"IntegrityError: {exc.orig}")
    else:
        log.warning("event %s (%s) failed: %s: %s", row.stripe_id, row.type,
                    type(exc).__name__, exc)
        inbox.mark_failed(row, f"{type(exc).__name__}: {exc}")


def process_rows(
    session: Session, rows: Sequence[WebhookEvent], reader: StripeReader, fee_rate: Decimal,
    *, batched: bool = True, table: RouteTable | None = None,
) -> int:
    """Apply a batch; answers how many of its rows were left waiting (their rows held by
    another batch), untouched."""
    reader.new_batch()
    batch = _Batch(session, rows, reader, fee_rate, table or route_table(),
                   skip_held=batched and len(rows) > 1)
    for row in batch.malformed:
        with logs.context(event_id=row.stripe_id):
            log.warning("event %s (%s) failed: malformed: no data.object", row.stripe_id,
                        row.type)
        inbox.mark_failed(row, "malformed event: no data.object")
    if batched and len(batch.rows) > 1:
        try:
            with session.begin_nested():
                _apply_all(session, batch)
            return len(batch.deferred)
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            log.info("batch of %d: %s; applying event by event", len(rows), exc)
    pending: list[ledger.JournalSpec] = []
    for row, obj in batch.rows:
        if pending and batch.table.reads_ledger(row.type):
            _post(session, pending)  # outside the event's savepoint: those events stand
            pending = []
        ctx = batch.context()
        try:
            with session.begin_nested():
                batch.apply(session, row, obj, ctx, [])
                if not batched:
                    _post(session, ctx.journals)
                    ctx.journals.clear()
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            _settle_failure(row, exc)
            continue
        pending.extend(ctx.journals)
        inbox.mark_processed(row)
    _post(session, pending)
    return len(batch.deferred)


def drain(config: Config, batch_size: int = BATCH_SIZE, max_batches: int | None = None,
          max_seconds: float | None = None) -> int:
    """Process waiting events until none are due; returns how many rows were settled.

    Only trouble no event causes (``is_infrastructure``) ends it with an error (the task
    retries); any event that cannot be applied is marked on its own row. ``max_seconds``
    stops it between batches (the task re-enqueues itself), so a steady inflow never runs a
    drain into the task's time limit.
    """
    table = route_table()  # a domain that cannot load stops here, failing no event
    reader = StripeReader(gateway_for(config))
    started = time.monotonic()
    done = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            break
        batches += 1
        isolate: list[int] = []
        with session_scope() as session:
            rows = inbox.claim_batch(session, batch_size)
            if not rows:
                break
            ids = [r.id for r in rows]
            left = 0
            try:
                with session.begin_nested():
                    left = process_rows(session, rows, reader, config.platform_fee_rate,
                                        table=table)
            except Exception as exc:
                if is_infrastructure(exc):
                    raise
                log.exception("batch of %d refused as a whole; isolating", len(rows))
                isolate = ids
                for row in rows:
                    session.refresh(row)
        for event_id in isolate:
            process_one(config, event_id, reader)
        settled = len(ids) - left
        done += settled
        log.info("settled a batch of %d events", settled, extra={"events": settled})
    return done


def process_one(config: Config, event_id: int, reader: StripeReader | None = None) -> bool:
    """Process one inbox row in its own transaction (skipped if no longer waiting).

    Whatever the event does, the row ends settled: applied, failed with its reason, or
    scheduled for a retry. Only the database going away raises.
    """
    table = route_table()
    reader = reader or StripeReader(gateway_for(config))
    try:
        with session_scope() as session:
            row = inbox.lock_event(session, event_id)
            if row is None or row.status != RECEIVED:
                return False
            process_rows(session, [row], reader, config.platform_fee_rate, batched=False,
                         table=table)
    except Exception as exc:
        if is_infrastructure(exc):
            raise
        log.exception("event row %d refused on its own", event_id)
        with session_scope() as session:
            row = inbox.lock_event(session, event_id)
            if row is None or row.status != RECEIVED:
                return False
            _settle_failure(row, exc)
    return True


def backfill(config: Config, max_pages: int = 50) -> int:
    """Store events Stripe has and we missed, from the Events API; returns how many were new.

    Reads every event created since the stored cursor (less an overlap), newest first, page
    by page, and inserts the ones we handle with ON CONFLICT DO NOTHING.
    """
    gateway = gateway_for(config)
    with session_scope() as session:
        since = max(0, inbox.cursor(session, BACKFILL_CURSOR).created_gte - BACKFILL_OVERLAP)
    new = 0
    newest = since
    after: str | None = None
    table = route_table()
    for _ in range(max_pages):
        page = gateway.list_events(created_gte=since, starting_after=after, limit=100)
        events = [e for e in page["data"] if table.wants(e)]
        with session_scope() as session:
            new += inbox.store_events(session, events, via="backfill")
        for e in page["data"]:
            newest = max(newest, int(e["created"]))
        if not page.get("has_more") or not page["data"]:
            break
        after = page["data"][-1]["id"]
    with session_scope() as session:
        cur = inbox.cursor(session, BACKFILL_CURSOR)
        cur.created_gte = max(cur.created_gte, newest)
        cur.updated = now_ts()
    return new
