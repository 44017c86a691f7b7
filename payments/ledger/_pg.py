"""The PostgreSQL writer: one statement per batch (or per single journal).

Constant statements (prepared once per connection), arrays instead of long VALUES lists,
executed on the driver connection inside the session's transaction. docs/ledger.md ("One
way in") walks through the order of the batch statement's steps and why it is one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from payments.clock import now_ts
from payments.errors import NotFound
from payments.ledger.errors import already_reversed, insufficient
from payments.ledger.journals import PostedJournal, Prepared, posted_journal

# Advisory lock key: every posting holds it shared from its first statement, so that
# ``jobs.checkpoint`` can take it exclusively for an instant to find a safe horizon.
POST_LOCK = 0x1ED6E7_0001

_PG_ONE = """
WITH j AS (
  INSERT INTO ledger_journals (key, kind, source_type, source_id, effective_at, created,
                               reverses_id, leg_count)
  SELECT %(key)s::text, %(kind)s::text, %(st)s::text, %(si)s::text, %(eff)s::bigint,
         GREATEST(%(created)s::bigint, %(eff)s::bigint), %(rev)s::bigint, %(n)s::int
  FROM (SELECT pg_advisory_xact_lock_shared(%(lock)s::bigint)) AS lk WHERE true
  ON CONFLICT (key) DO NOTHING RETURNING id
), u AS (
  UPDATE ledger_accounts SET balance = balance + %(d)s::bigint,
         last_entry_id = nextval('ledger_entries_id_seq')
  FROM j WHERE ledger_accounts.id = %(acc)s::bigint
  RETURNING ledger_accounts.balance, ledger_accounts.last_entry_id
), e AS (
  INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency, balance_after)
  SELECT u.last_entry_id, j.id, %(acc)s::bigint, %(d)s::bigint, %(cur)s::text, u.balance
  FROM j, u
  UNION ALL
  SELECT nextval('ledger_entries_id_seq'), j.id, x.a, x.m, x.c, NULL
  FROM j, unnest(%(pa)s::bigint[], %(pm)s::bigint[], %(pc)s::text[]) AS x(a, m, c)
)
SELECT id FROM j
"""

# A batch in one statement, so that the creator rows are locked for as little as possible
# (from the middle of this statement to the commit): the journals (ON CONFLICT DO NOTHING,
# under the shared posting lock); the entries of the new ones (``v``); only then the creator
# rows, locked in id order (``l``); the entry ids drawn after every lock is held (``e`` reads
# an aggregate of ``l``), so per account entry-id order is balance_after order; the entries
# with their running balances; the creator rows' new balances (``u`` reads an aggregate of
# ``e``, so it touches only rows ``l`` already holds). sum(bigint) is numeric: cast back.
_PG_BATCH = """
WITH j AS (
  INSERT INTO ledger_journals (key, kind, source_type, source_id, effective_at, created,
                               reverses_id, leg_count)
  SELECT x.key, x.kind, x.st, x.si, x.eff, GREATEST(%(created)s::bigint, x.eff), x.rev, x.n
  FROM unnest(%(key)b::text[], %(kind)b::text[], %(st)b::text[], %(si)b::text[],
              %(eff)s::bigint[], %(rev)s::bigint[], %(n)s::int[])
       AS x(key, kind, st, si, eff, rev, n),
       (SELECT pg_advisory_xact_lock_shared(%(lock)s::bigint)) AS lk
  WHERE true
  ON CONFLICT (key) DO NOTHING RETURNING id, key
), jn AS MATERIALIZED (
  SELECT j.id, j.key, k.n FROM j JOIN unnest(%(key)b::text[]) WITH ORDINALITY AS k(key, n)
  ON k.key = j.key
), v AS MATERIALIZED (
  SELECT jn.id AS jid, x.a, x.m, x.c, x.r, x.o
  FROM unnest(%(ej)s::bigint[], %(ea)s::bigint[], %(em)s::bigint[], %(ec)b::text[],
              %(er)s::boolean[]) WITH ORDINALITY AS x(jn, a, m, c, r, o)
  JOIN jn ON jn.n = x.jn
), l AS MATERIALIZED (
  SELECT a.id, a.balance
  FROM unnest((SELECT array_agg(DISTINCT v.a ORDER BY v.a) FROM v WHERE v.r)) AS r(id)
  CROSS JOIN LATERAL (SELECT id, balance FROM ledger_accounts WHERE id = r.id FOR UPDATE) AS a
), e AS MATERIALIZED (
  SELECT nextval('ledger_entries_id_seq') AS id, v.jid, v.a, v.m, v.c, v.r
  FROM v, (SELECT count(*) AS n FROM l) AS lk WHERE lk.n >= 0 ORDER BY v.o
), ins AS (
  INSERT INTO ledger_entries (id, journal_id, account_id, amount, currency, balance_after)
  SELECT e.id, e.jid, e.a, e.m, e.c,
         CASE WHEN e.r THEN (l.balance + sum(e.m) OVER (PARTITION BY e.a ORDER BY e.id))::bigint
         END
  FROM e LEFT JOIN l ON l.id = e.a
), u AS (
  UPDATE ledger_accounts
  SET balance = ledger_accounts.balance + d.deltas[array_position(d.ids, ledger_accounts.id)],
      last_entry_id = d.lasts[array_position(d.ids, ledger_accounts.id)]
  FROM (SELECT array_agg(g.a ORDER BY g.a) AS ids, array_agg(g.delta ORDER BY g.a) AS deltas,
               array_agg(g.last ORDER BY g.a) AS lasts
        FROM (SELECT e.a, sum(e.m)::bigint AS delta, max(e.id) AS last FROM e WHERE e.r
              GROUP BY e.a) AS g) AS d
  WHERE ledger_accounts.id = ANY(d.ids)
)
SELECT array_agg(jn.id ORDER BY jn.n), array_agg(jn.key ORDER BY jn.n),
       (SELECT count(*) FROM l), (SELECT count(DISTINCT v.a) FROM v WHERE v.r)
FROM jn
"""


def write(conn: Connection, unique: list[Prepared]) -> dict[str, PostedJournal]:
    """PostgreSQL: write the new journals among ``unique``; answer them by key.

    One statement (plus the caller's commit), see ``_PG_BATCH``. Parameters are arrays:
    strings in binary, integers and booleans as one array literal each (joining ``str()`` is
    several times cheaper than adapting each value).
    """
    import psycopg

    dconn: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    created = now_ts()  # each journal's: never before its effective time (see posting)
    try:
        if len(unique) == 1 and sum(1 for a, _ in unique[0].legs if a.running) <= 1:
            return _write_one(dconn, unique[0], created)

        e_journal: list[int] = []
        e_account: list[int] = []
        e_amount: list[int] = []
        e_currency: list[str] = []
        e_running: list[str] = []
        for n, p in enumerate(unique, 1):
            for info, amount in p.legs:
                e_journal.append(n)
                e_account.append(info.id)
                e_amount.append(amount)
                e_currency.append(info.currency)
                e_running.append("t" if info.running else "f")
        spec_of = [p.spec for p in unique]
        with dconn.cursor(binary=True) as cur:
            row = cur.execute(_PG_BATCH, {
                "created": created, "lock": POST_LOCK,
                "key": [s.key for s in spec_of], "kind": [s.kind for s in spec_of],
                "st": [p.source_type for p in unique], "si": [p.source_id for p in unique],
                "eff": _int_array([p.effective_at for p in unique]),
                "rev": _int_array([s.reverses_id for s in spec_of]),
                "n": _int_array([len(p.legs) for p in unique]),
                "ej": _int_array(e_journal), "ea": _int_array(e_account),
                "em": _int_array(e_amount), "ec": e_currency,
                "er": "{" + ",".join(e_running) + "}",
            }, prepare=True).fetchone()
        assert row is not None
        jids, jkeys, locked, wanted = row
        if not jids:
            return {}
        if locked != wanted:
            raise NotFound("A creator ledger account is missing.", code="account_not_found")
        by_key = {p.spec.key: p for p in unique}
        return {k: posted_journal(by_key[k], jid) for k, jid in zip(jkeys, jids, strict=True)}
    except psycopg.errors.CheckViolation:
        raise insufficient() from None
    except psycopg.errors.IntegrityConstraintViolation:
        # The entries check (migration 0006): post() has already checked balance and legs,
        # so an incomplete journal here means a creator account row was not there to update.
        raise NotFound("A creator ledger account is missing.",
                       code="account_not_found") from None
    except psycopg.errors.UniqueViolation as exc:
        if "reverses_id" in str(exc):
            raise already_reversed() from None
        raise


def _int_array(values: Sequence[int | None]) -> str:
    """A bigint[] literal: joining str() is several times cheaper than adapting each int."""
    if None in values:
        return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"
    return "{" + ",".join(map(str, values)) + "}"


def _write_one(dconn: Any, p: Prepared, created: int) -> dict[str, PostedJournal]:
    """One journal with at most one creator leg: one statement (journal, row, entries)."""
    run = [(a, m) for a, m in p.legs if a.running]
    plat = [(a, m) for a, m in p.legs if not a.running]
    with dconn.cursor() as cur:
        cur.execute(_PG_ONE, {
            "key": p.spec.key, "kind": p.spec.kind, "st": p.source_type,
            "si": p.source_id, "eff": p.effective_at, "created": created,
            "rev": p.spec.reverses_id, "n": len(p.legs), "lock": POST_LOCK,
            "d": run[0][1] if run else None, "acc": run[0][0].id if run else None,
            "cur": run[0][0].currency if run else None,
            "pa": [a.id for a, _ in plat], "pm": [m for _, m in plat],
            "pc": [a.currency for a, _ in plat],
        }, prepare=True)
        row = cur.fetchone()
    return {p.spec.key: posted_journal(p, int(row[0]))} if row else {}
