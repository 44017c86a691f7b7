"""The day's ledger against Stripe: balance transactions, transfers, clearing accounts.

Per currency, the net of Stripe's balance transactions created that day (UTC) must equal the
movements of the ledger's ``stripe_balance`` for journals effective that day (a journal's
effective time is its Stripe object's). Each side is resolved to Stripe objects, so a
difference names both sides' ids:

* a tip's, a paid invoice's and a deal funding's journals (``tip:{tip}``, ``invoice:{in_}``,
  ``deal_fund:{deal}``, each with its ``:processor_fee``) are their charge's (``ch_``, from
  our row); ``tip_refund:{re}``, ``subscription_refund:{re}``, ``deal_refund:{re}`` and
  ``deal_refund_failed:{re}`` the refund's; ``tip_dispute:{dp}:{txn}``,
  ``subscription_dispute:{dp}:{txn}`` and ``deal_chargeback:{dp}:{txn}`` that balance
  transaction's; ``payout:{po}`` its transfer's (``tr_``), ``payout_return:{po}`` its
  reversal's (``trr_``); any other journal its source's: a Stripe id, or the charge of the
  tip, invoice or deal it names;
* nothing is paired by amount: a Stripe object on one side only is missing on the other,
  and a journal that names no Stripe object is listed (``object`` null) with its keys.

Our payouts are checked against Stripe's transfers of the day, and the clearing accounts:
``refunds_and_disputes`` must be zero, ``payouts_in_transit`` must hold exactly the payouts
still on their way. The service takes the gateway as an argument (it never imports Stripe).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import date
from typing import Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from payments.clock import now_ts
from payments.db import insert_ignoring_conflicts
from payments.ids import PREFIXES, public_id
from payments.ledger import service as ledger
from payments.reconciliation.models import ReconciliationReport

STRIPE_PREFIXES = ("ch_", "py_", "re_", "dp_", "du_", "tr_", "trr_", "txn_", "in_", "pi_")


class BalanceTransactions(Protocol):
    def iter_balance_transactions(self, **filters: Any) -> Any: ...


def parse_day(day: str) -> tuple[int, int]:
    """``YYYY-MM-DD`` -> [start, end) unix seconds (UTC)."""
    try:
        d = date.fromisoformat(day)
    except (TypeError, ValueError):
        raise ValueError(f"{day!r} is not a date (YYYY-MM-DD)") from None
    if len(day) != 10:
        raise ValueError(f"{day!r} is not a date (YYYY-MM-DD)")
    start = calendar.timegm((d.year, d.month, d.day, 0, 0, 0))
    return start, start + 86400


def _base_key(key: str) -> str:
    for suffix in (":processor_fee", ":platform_fee"):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _ledger_side(session: Session, start: int, end: int) -> list[dict[str, Any]]:
    rows = session.connection().execute(text(
        "SELECT j.id, j.key, j.kind, j.source_type, j.source_id, a.currency, SUM(e.amount) "
        "FROM ledger_journals j JOIN ledger_entries e ON e.journal_id = j.id "
        "JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE a.owner_kind = 'platform' AND a.purpose = 'stripe_balance' "
        "AND j.effective_at >= :s AND j.effective_at < :e "
        "GROUP BY j.id, j.key, j.kind, j.source_type, j.source_id, a.currency ORDER BY j.id"),
        {"s": start, "e": end}).all()
    return [{"journal": int(r[0]), "key": r[1], "kind": r[2], "source_type": r[3],
             "source_id": r[4], "currency": r[5], "amount": int(r[6])} for r in rows]


# Journal key heads whose rest is the Stripe object itself: ``{head}:{object}`` (refunds) or
# ``{head}:{dispute}:{balance transaction}`` (each dispute transaction is its own journal).
BY_KEY = {"tip_refund": "object", "subscription_refund": "object", "deal_refund": "object",
          "deal_refund_failed": "object", "tip_dispute": "last", "deal_chargeback": "last",
          "subscription_dispute": "last"}


def _lookup(session: Session, column: Any, key_column: Any, ids: set[str]
            ) -> dict[str, str | None]:
    if not ids:
        return {}
    return {str(k): v for k, v in session.execute(select(key_column, column).where(
        key_column.in_(sorted(ids))))}


def _resolve(session: Session, journals: list[dict[str, Any]]) -> None:
    """Set each journal's ``object``: the Stripe id its balance transaction answers to (a
    charge, refund, balance transaction, transfer or reversal id), or None.

    How each domain links a journal to its cause: the key names our row or the Stripe
    object (``docs/ledger.md``), the source names our row. Tips ``tip:{tip}``, paid
    invoices ``invoice:{in_}`` and deal fundings ``deal_fund:{deal}`` (each with its
    ``:processor_fee``) are their charge's, read from our row; refunds and refund failures
    ``*_refund:{re_}`` the refund's; dispute journals ``*:{dp_}:{txn_}`` that transaction's;
    ``payout:{po}`` its transfer's, ``payout_return:{po}`` its reversal's. Any other journal
    answers to its source: a Stripe id itself, or the charge of the tip, invoice or deal it
    names.
    """
    from payments.deals.models import Deal
    from payments.payouts.models import Payout
    from payments.subscriptions.models import SubscriptionInvoice
    from payments.tips.models import Tip

    wanted: dict[str, set[str]] = defaultdict(set)
    for j in journals:
        head, _, rest = _base_key(j["key"]).partition(":")
        if head in ("tip", "invoice", "deal_fund", "payout", "payout_return"):
            wanted[head.replace("payout_return", "payout")].add(rest)
        if j["source_type"] in ("tip", "invoice", "deal") and j["source_id"]:
            wanted[{"deal": "deal_fund"}.get(j["source_type"], j["source_type"])].add(
                j["source_id"])
    charges = {
        "tip": _lookup(session, Tip.charge_id, Tip.public_id, wanted["tip"]),
        "invoice": _lookup(session, SubscriptionInvoice.charge_id,
                           SubscriptionInvoice.stripe_invoice_id, wanted["invoice"]),
        "deal_fund": _lookup(session, Deal.charge_id, Deal.public_id, wanted["deal_fund"]),
    }
    payouts: dict[str, tuple[str | None, str | None]] = {}
    if wanted["payout"]:
        for pid, tr, trr in session.execute(select(
                Payout.public_id, Payout.transfer_id, Payout.reversal_id).where(
                Payout.public_id.in_(sorted(wanted["payout"])))):
            payouts[pid] = (tr, trr)
    for j in journals:
        head, _, rest = _base_key(j["key"]).partition(":")
        obj: str | None = None
        if head in charges:
            obj = charges[head].get(rest)
        elif head in BY_KEY:
            obj = rest if BY_KEY[head] == "object" else rest.split(":")[-1]
        elif head == "payout":
            obj = payouts.get(rest, (None, None))[0]
        elif head == "payout_return":
            obj = payouts.get(rest, (None, None))[1]
        elif isinstance(j["source_id"], str) and j["source_id"].startswith(STRIPE_PREFIXES) \
                and j["source_type"] != "invoice":
            obj = j["source_id"]
        elif j["source_type"] in ("tip", "invoice", "deal"):
            kind = {"deal": "deal_fund"}.get(j["source_type"], j["source_type"])
            obj = charges[kind].get(j["source_id"])
        j["object"] = obj


def _journal_ids(ids: list[int]) -> list[str]:
    return [public_id(PREFIXES["journal"], i) for i in ids]


def _slot() -> dict[str, Any]:
    return {"amount": 0, "journals": [], "keys": [], "sources": []}


def _ledger_view(slot: dict[str, Any]) -> dict[str, Any]:
    """The ledger's side of a difference: the journals, their keys and what they book
    (``sources``: our tip, invoice, deal or payout, as the journals name them)."""
    return {"amount": slot["amount"], "journals": _journal_ids(slot["journals"]),
            "keys": slot["keys"], "sources": slot["sources"]}


def _txn_view(t: dict[str, Any]) -> dict[str, Any]:
    return {"balance_transaction": t["id"], "source": t.get("source"), "type": t.get("type"),
            "amount": t["amount"], "fee": t.get("fee", 0), "net": t["net"],
            "currency": t["currency"], "created": t.get("created")}


def reconcile(session: Session, gateway: BalanceTransactions, day: str, *,
              store: bool = False) -> dict[str, Any]:
    start, end = parse_day(day)
    txns = [t for t in gateway.iter_balance_transactions(created_gte=start, created_lt=end)
            if start <= int(t.get("created", start)) < end]
    journals = _ledger_side(session, start, end)
    _resolve(session, journals)

    # Ledger side by Stripe object (and currency); a journal that names none stays alone.
    by_obj: dict[tuple[str, str], dict[str, Any]] = {}
    unnamed: list[tuple[str, dict[str, Any]]] = []
    for j in journals:
        if j["object"]:
            slot = by_obj.setdefault((j["object"], j["currency"]), _slot())
        else:
            slot = _slot()
            unnamed.append((j["currency"], slot))
        slot["amount"] += j["amount"]
        slot["journals"].append(j["journal"])
        slot["keys"].append(j["key"])
        if j["source_type"] and j["source_id"]:
            source = {"type": j["source_type"], "id": j["source_id"]}
            if source not in slot["sources"]:
                slot["sources"].append(source)

    # Stripe side: each transaction under its own id when the ledger names it, else its
    # source's.
    stripe_by_obj: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in txns:
        key = (t["id"], t["currency"])
        if key not in by_obj:
            key = (str(t.get("source") or t["id"]), t["currency"])
        stripe_by_obj[key].append(t)

    differences: list[dict[str, Any]] = []
    for key, ts in sorted(stripe_by_obj.items()):
        net = sum(int(t["net"]) for t in ts)
        stripe = {"net": net, "balance_transactions": [_txn_view(t) for t in ts]}
        ours = by_obj.pop(key, None)
        if ours is None:
            differences.append({
                "problem": "missing_in_ledger", "object": key[0], "currency": key[1],
                "stripe": stripe, "ledger": None, "difference": -net})
        elif ours["amount"] != net:
            differences.append({
                "problem": "amount_differs", "object": key[0], "currency": key[1],
                "stripe": stripe, "ledger": _ledger_view(ours),
                "difference": ours["amount"] - net})
    for (obj, cur), ours in sorted(by_obj.items()):
        differences.append({
            "problem": "missing_in_stripe", "object": obj, "currency": cur, "stripe": None,
            "ledger": _ledger_view(ours), "difference": ours["amount"]})
    # Journals on Stripe's balance that name no Stripe object: never paired by amount.
    for cur, ours in unnamed:
        differences.append({
            "problem": "missing_in_stripe", "object": None, "currency": cur, "stripe": None,
            "ledger": _ledger_view(ours), "difference": ours["amount"]})

    currencies: dict[str, dict[str, int]] = defaultdict(lambda: {"stripe_net": 0,
                                                                 "ledger_net": 0})
    for t in txns:
        currencies[t["currency"]]["stripe_net"] += int(t["net"])
    for j in journals:
        currencies[j["currency"]]["ledger_net"] += j["amount"]

    report = {
        "object": "reconciliation", "date": day, "created": now_ts(),
        "currencies": [{"currency": c, **v, "difference": v["ledger_net"] - v["stripe_net"]}
                       for c, v in sorted(currencies.items())],
        "differences": differences,
        "payouts": _payouts_vs_transfers(session, txns, start, end),
        "clearing": _clearing(session),
        "balance_transactions": len(txns), "journals": len(journals),
    }
    report["clean"] = not (differences or report["payouts"] or report["clearing"])
    if store:
        _store(session, day, report)
    return report


def describe(d: dict[str, Any]) -> str:
    """One line for a difference: the Stripe object, both sides' transactions and journals."""
    stripe, ours = d.get("stripe"), d.get("ledger")
    txns = ", ".join(f"{t['balance_transaction']} ({t['type']} {t['source']}, net {t['net']})"
                     for t in stripe["balance_transactions"]) if stripe else "none"
    books = (", ".join(ours["keys"]) + f" (amount {ours['amount']}"
             + "".join(f", {s['type']} {s['id']}" for s in ours.get("sources", [])) + ")"
             ) if ours else "none"
    return (f"{d['problem']} {d['object'] or '(no Stripe object)'} {d['currency']}: "
            f"difference {d['difference']}; stripe: {txns}; ledger: {books}")


def _payouts_vs_transfers(session: Session, txns: list[dict[str, Any]], start: int,
                          end: int) -> list[dict[str, Any]]:
    from payments.payouts.models import Payout

    transfers = {str(t.get("source")): t for t in txns if t.get("type") == "transfer"}
    problems: list[dict[str, Any]] = []
    ours = session.scalars(select(Payout).where(
        Payout.transfer_created >= start, Payout.transfer_created < end)).all()
    seen: set[str] = set()
    for p in ours:
        t = transfers.get(p.transfer_id or "")
        seen.add(p.transfer_id or "")
        if t is None:
            problems.append({"problem": "transfer_missing", "payout": p.public_id,
                             "transfer": p.transfer_id, "amount": p.amount,
                             "stripe_amount": None, "currency": p.currency})
        elif -int(t["amount"]) != p.amount or t["currency"] != p.currency:
            problems.append({"problem": "amount_differs", "payout": p.public_id,
                             "transfer": p.transfer_id, "amount": p.amount,
                             "stripe_amount": -int(t["amount"]), "currency": p.currency})
    # Stripe's transfers that no payout of ours made (that day or any other).
    unknown = [tid for tid in transfers if tid not in seen]
    if unknown:
        known = set(session.scalars(select(Payout.transfer_id).where(
            Payout.transfer_id.in_(unknown))))
        for tid in unknown:
            if tid not in known:
                t = transfers[tid]
                problems.append({"problem": "payout_missing", "payout": None,
                                 "transfer": tid, "amount": None,
                                 "stripe_amount": -int(t["amount"]),
                                 "currency": t["currency"]})
    return problems


def _clearing(session: Session) -> list[dict[str, Any]]:
    """Clearing accounts that do not hold what they should."""
    from payments.payouts.models import Payout

    flagged: list[dict[str, Any]] = []
    rows = session.connection().execute(text(
        "SELECT id, purpose, currency FROM ledger_accounts WHERE owner_kind = 'platform' "
        "AND purpose IN ('refunds_and_disputes', 'payouts_in_transit') ORDER BY id")).all()
    in_flight: dict[str, int] = defaultdict(int)
    for cur, amount in session.execute(select(Payout.currency, Payout.amount).where(
            Payout.status.in_(("pending", "in_transit", "returning")))):
        in_flight[cur] += int(amount)
    for acc_id, purpose, cur in rows:
        balance = ledger.account_balance(session, ledger.account_by_id(session, int(acc_id)))
        expected = in_flight.get(cur, 0) if purpose == "payouts_in_transit" else 0
        if balance != expected:
            flagged.append({"account": purpose, "currency": cur, "balance": balance,
                            "expected": expected})
    return flagged


def _store(session: Session, day: str, report: dict[str, Any]) -> None:
    existing = session.scalar(select(ReconciliationReport).where(
        ReconciliationReport.day == day))
    if existing is None:
        stmt = insert_ignoring_conflicts(session, ReconciliationReport.__table__, ["day"])
        session.execute(stmt.values(day=day, clean=report["clean"], report=report,
                                    created=now_ts()))
        return
    existing.clean = bool(report["clean"])
    existing.report = report
    existing.created = now_ts()
    session.flush()


def stored(session: Session, day: str) -> dict[str, Any] | None:
    row = session.scalar(select(ReconciliationReport).where(ReconciliationReport.day == day))
    return None if row is None else dict(row.report)
