"""The worker side of the inbox: claim a batch, apply each event, post, mark, commit.

One transaction per batch, not per event: handlers collect journals and the batch posts them
with one ``post_many``. The batch's tips are locked with one query (in id order) and its
balance transactions fetched a page of 100 at a time. A batch is first applied in one
savepoint with no per-event overhead; if any event raises, that savepoint is rolled back and
the batch is applied again with each event in its own savepoint, so one bad event is marked
``failed`` and the rest of the batch still lands. Should the batch's final posting be
refused, the batch is rolled back and replayed one event per transaction, isolating the
culprit.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from payments.clock import now_ts
from payments.config import Config
from payments.db import for_update, one_of, session_scope
from payments.gateway import Gateway, GatewayError, TransientGatewayError
from payments.gateways import gateway_for
from payments.ledger import service as ledger
from payments.tips.models import Tip
from webhooks import service as inbox
from webhooks.handlers import HANDLED_TYPES, HANDLERS, HandlerContext, balance_transaction_ids
from webhooks.models import PROCESSED, RECEIVED, WebhookEvent

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
BACKFILL_CURSOR = "stripe_events"
# Events can be created slightly out of order; re-read this far behind the cursor.
BACKFILL_OVERLAP = 300


# Per gateway, in this process: balance transactions already read, kept across drain tasks
# (a page listed for one batch usually holds the next batch's transactions too).
_TXN_CACHES: weakref.WeakKeyDictionary[Gateway, dict[str, dict[str, Any]]] = (
    weakref.WeakKeyDictionary())


class StripeReader:
    """Balance transactions and charges for one batch, fetched once each."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.txns = _TXN_CACHES.setdefault(gateway, {})

    def prefetch(self, txn_ids: Iterable[str], created_range: tuple[int, int]) -> None:
        missing = {t for t in txn_ids if t not in self.txns}
        if len(missing) >= LIST_THRESHOLD:
            if len(self.txns) > CACHE_MAX:
                self.txns.clear()
            lo, hi = created_range
            # Newest first from just after the batch's last event: the pages hold the batch's
            # own transactions (and those of batches made at the same time), not everything
            # created since. Bounded, so a stray old transaction cannot make us read it all.
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
        if missing:
            with ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
                for txn in pool.map(self.gateway.retrieve_balance_transaction, sorted(missing)):
                    self.txns[txn["id"]] = txn

    def balance_transaction(self, txn_id: str) -> dict[str, Any]:
        found = self.txns.get(txn_id)
        if found is None:
            found = self.txns[txn_id] = self.gateway.retrieve_balance_transaction(txn_id)
        return found

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return self.gateway.retrieve_charge(charge_id)


def _post(session: Session, specs: Sequence[ledger.JournalSpec]) -> None:
    unique: dict[str, ledger.JournalSpec] = {}
    for spec in specs:
        unique.setdefault(spec.key, spec)
    if unique:
        ledger.post_many(session, list(unique.values()))


def _lock_tips(session: Session, rows: Sequence[WebhookEvent]) -> dict[str, Tip]:
    """Lock the batch's tips (named in the events' metadata) with one query, in id order."""
    ids = set()
    for row in rows:
        obj = row.payload.get("data", {}).get("object")
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict) and meta.get("creatorpay_kind") == "tip" and meta.get("tip_id"):
            ids.add(str(meta["tip_id"]))
    if not ids:
        return {}
    stmt = select(Tip).where(one_of(session, Tip.public_id, sorted(ids))).order_by(Tip.id)
    return {tip.public_id: tip for tip in session.scalars(for_update(session, stmt))}


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


def _apply_all(
    session: Session, rows: Sequence[WebhookEvent], reader: StripeReader, fee_rate: Decimal,
    tips: dict[str, Tip],
) -> None:
    """The whole batch with no savepoint per event; raises if any event does."""
    ctx = HandlerContext(reader, fee_rate, tips=tips)
    for row in rows:
        route = HANDLERS.get(row.type)
        if route is None:
            continue
        if route.reads_ledger:
            _post(session, ctx.journals)
            ctx.journals.clear()
        route.handler(session, row.payload["data"]["object"], ctx)
        if route.reads_ledger:
            _post(session, ctx.journals)
            ctx.journals.clear()
    _post(session, ctx.journals)
    _mark_processed_all(session, rows)


def process_rows(
    session: Session, rows: Sequence[WebhookEvent], reader: StripeReader, fee_rate: Decimal,
    *, batched: bool = True,
) -> None:
    created = [r.stripe_created for r in rows] or [now_ts()]
    reader.prefetch(
        (t for r in rows for t in balance_transaction_ids(r.payload)), (min(created), max(created))
    )
    tips = _lock_tips(session, rows)
    if batched and len(rows) > 1:
        try:
            with session.begin_nested():
                _apply_all(session, rows, reader, fee_rate, tips)
            return
        except DBAPIError:
            raise
        except Exception as exc:  # noqa: BLE001 - redo event by event, below
            log.info("batch of %d: %s; applying event by event", len(rows), exc)
    pending: list[ledger.JournalSpec] = []
    for row in rows:
        route = HANDLERS.get(row.type)
        if route is None:
            inbox.mark_processed(row)
            continue
        if route.reads_ledger and pending:
            _post(session, pending)
            pending = []
        ctx = HandlerContext(reader, fee_rate, tips=tips)
        try:
            with session.begin_nested():
                route.handler(session, row.payload["data"]["object"], ctx)
                if not batched or route.reads_ledger:
                    _post(session, ctx.journals)
                    ctx.journals.clear()
        except TransientGatewayError as exc:
            log.warning("event %s: transient error, will retry: %s", row.stripe_id, exc)
            inbox.schedule_retry(row, f"transient: {exc}")
            continue
        except DBAPIError:
            raise
        except (GatewayError, Exception) as exc:  # noqa: BLE001 - a bad event must not block others
            log.exception("event %s (%s) failed", row.stripe_id, row.type)
            inbox.mark_failed(row, f"{type(exc).__name__}: {exc}")
            continue
        pending.extend(ctx.journals)
        inbox.mark_processed(row)
    _post(session, pending)


def drain(config: Config, batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> int:
    """Process waiting events until none are due; returns how many rows were settled."""
    reader = StripeReader(gateway_for(config))
    done = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        isolate: list[int] = []
        with session_scope() as session:
            rows = inbox.claim_batch(session, batch_size)
            if not rows:
                break
            ids = [r.id for r in rows]
            try:
                with session.begin_nested():
                    process_rows(session, rows, reader, config.platform_fee_rate)
            except DBAPIError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("batch of %d refused as a whole; isolating", len(rows))
                isolate = ids
                for row in rows:
                    session.refresh(row)
        for event_id in isolate:
            process_one(config, event_id, reader)
        done += len(ids)
    return done


def process_one(config: Config, event_id: int, reader: StripeReader | None = None) -> bool:
    """Process one inbox row in its own transaction (skipped if no longer waiting)."""
    reader = reader or StripeReader(gateway_for(config))
    with session_scope() as session:
        row = inbox.lock_event(session, event_id)
        if row is None or row.status != RECEIVED:
            return False
        process_rows(session, [row], reader, config.platform_fee_rate, batched=False)
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
    for _ in range(max_pages):
        page = gateway.list_events(created_gte=since, starting_after=after, limit=100)
        events = [e for e in page["data"] if e["type"] in HANDLED_TYPES]
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
