"""Statements as CSV (one line per ledger line, a header) and PDF (reportlab)."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text

from payments.ids import PREFIXES
from payments.money import CURRENCIES
from payments.statements.service import CATEGORY_SQL, FIGURES

CSV_HEADER = ["entry", "journal", "date", "effective_at", "kind", "category", "account",
              "amount", "currency", "source_type", "source_id", "late"]
LABELS = {
    "tips": "Tips", "subscriptions": "Subscriptions", "deals": "Sponsored deals",
    "processor_fees": "Processing fees (Stripe)", "platform_fees": "Platform fees",
    "refunds": "Refunds", "disputes": "Disputes", "adjustments": "Adjustments",
    "payouts": "Payouts",
}


def money(amount: int, currency: str) -> str:
    """``123456, usd`` -> ``1,234.56 USD`` (the currency's own exponent)."""
    exp = CURRENCIES[currency].exponent
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exp)
    body = f"{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
    return f"{sign}{body} {currency.upper()}"


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def csv_lines(lines: Iterable[dict[str, Any]]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for n, line in enumerate(lines, 1):
        src = line.get("source") or {}
        writer.writerow([line["id"], line["journal"], _day(line["effective_at"]),
                         line["effective_at"], line["kind"], line["category"],
                         line["account"], line["amount"], line["currency"],
                         src.get("type") or "", src.get("id") or "",
                         "true" if line.get("late") else "false"])
        if n % 1000 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


# ----------------------------------------------------------------------------- history

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# What the export hands the WSGI server at a time: COPY gives one row per read (about 90
# bytes), and the server writes each chunk it gets as one chunked-encoding frame.
EXPORT_CHUNK = 64 * 1024


# The alphabet as a bytea constant: ``get_byte`` is one array index, where ``substr`` of a
# text walks its characters (the database encoding is UTF-8).
_B62_BYTEA = "'\\x" + _B62.encode().hex() + "'::bytea"


def _b62_sql(col: str, largest: int) -> str:
    """``payments.ids.public_id``'s base62 as a PostgreSQL expression, with as many digits
    as ``largest`` needs (at most 11: BIGINT). Each digit is ``chr(get_byte(alphabet, d))``:
    for the export's two ids about a third of the COPY's CPU (``substr`` of the alphabet
    cost 2.7 times as much)."""
    n = 1
    while 62**n <= largest and n < 11:
        n += 1
    digits = " || ".join(f"chr(get_byte({_B62_BYTEA}, (({col} / {62**k}) % 62)::int))"
                         for k in reversed(range(n)))
    return f"COALESCE(NULLIF(ltrim({digits}, '0'), ''), '0')"


# The SQLite path's columns, formatted by PostgreSQL, byte for byte: ids in base62, the
# effective day as a date (floor division: UTC days; printed by DateStyle ISO, set for the
# export's transaction), integers as integers (the creator's sign), and a missing source as
# NULL, which COPY writes as an empty field (an empty string it would quote: ``""``).
HISTORY_COLUMNS = (
    "'{le}_' || {eid}, '{jr}_' || {jid}, "
    "DATE '1970-01-01' + ((j.effective_at - ((j.effective_at % 86400 + 86400) % 86400)) "
    "/ 86400)::int, j.effective_at, "
    "j.kind, {cat}, a.purpose, -e.amount, a.currency, NULLIF(j.source_type, ''), "
    "NULLIF(j.source_id, ''), 'false'"
)


def _chunks(blocks: Iterable[bytes | bytearray | memoryview],
            size: int = EXPORT_CHUNK) -> Iterator[bytes]:
    """Rows of bytes regrouped into chunks of about ``size`` bytes."""
    buf = bytearray()
    for block in blocks:
        buf += block
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


def history_csv(conn: Connection, accs: list[int]) -> Iterator[bytes]:
    """Every line of the creator's balance accounts in one currency, oldest first, as CSV
    in chunks of about ``EXPORT_CHUNK`` bytes: on PostgreSQL ``COPY ... TO STDOUT`` through
    psycopg (``history_copy``), elsewhere a cursor and csv (``history_cursor``); the same
    bytes for the same ledger."""
    if conn.dialect.name == "postgresql":
        return history_copy(conn, accs)
    return history_cursor(conn, accs)


def _header() -> bytes:
    return (",".join(CSV_HEADER) + "\n").encode()


def history_copy(conn: Connection, accs: list[int]) -> Iterator[bytes]:
    """PostgreSQL formats the lines (``HISTORY_COLUMNS``); we regroup COPY's rows.

    A connection not yet in a transaction reads in one REPEATABLE READ snapshot, so the
    digits sized from the largest ids cover every id the COPY then sees.
    """
    if not accs:
        yield _header()
        return
    if not conn.in_transaction():
        conn.execution_options(isolation_level="REPEATABLE READ")
    conn.exec_driver_sql("SET LOCAL DateStyle = 'ISO, YMD'")
    top_entry, top_journal = conn.execute(text(
        "SELECT (SELECT COALESCE(MAX(last_entry_id), 0) FROM ledger_accounts "
        "WHERE id IN :accs), (SELECT COALESCE(MAX(id), 0) FROM ledger_journals)")
        .bindparams(bindparam("accs", expanding=True)), {"accs": accs}).one()
    cols = HISTORY_COLUMNS.format(le=PREFIXES["entry"], jr=PREFIXES["journal"],
                                  eid=_b62_sql("e.id", int(top_entry)),
                                  jid=_b62_sql("e.journal_id", int(top_journal)),
                                  cat=CATEGORY_SQL)
    ids = ",".join(str(int(a)) for a in accs)
    sql = (f"COPY (SELECT {cols} FROM ledger_entries e "  # noqa: S608 - ints and constants only
           "JOIN ledger_journals j ON j.id = e.journal_id "
           "JOIN ledger_accounts a ON a.id = e.account_id "
           f"WHERE e.account_id IN ({ids}) ORDER BY e.id) TO STDOUT WITH (FORMAT csv)")
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(sql) as copy:
        yield from _chunks(itertools.chain((_header(),), copy))


def history_cursor(conn: Connection, accs: list[int]) -> Iterator[bytes]:
    """Any database: rows from a server-side cursor, formatted by ``csv`` in Python."""
    from payments.ids import public_id

    buf = io.StringIO()
    buf.write(_header().decode())
    if not accs:
        yield buf.getvalue().encode()
        return
    rows = conn.execute(text(
        f"SELECT e.id, e.journal_id, j.effective_at, j.kind, {CATEGORY_SQL}, a.purpose, "  # noqa: S608 - constants only
        "e.amount, a.currency, j.source_type, j.source_id "
        "FROM ledger_entries e JOIN ledger_journals j ON j.id = e.journal_id "
        "JOIN ledger_accounts a ON a.id = e.account_id WHERE e.account_id IN :accs "
        "ORDER BY e.id").bindparams(bindparam("accs", expanding=True))
        .execution_options(stream_results=True), {"accs": accs})
    writer = csv.writer(buf, lineterminator="\n")
    for r in rows:
        writer.writerow([public_id(PREFIXES["entry"], int(r[0])),
                         public_id(PREFIXES["journal"], int(r[1])), _day(int(r[2])), r[2],
                         r[3], r[4], r[5], -int(r[6]), r[7], r[8] or "", r[9] or "", "false"])
        if buf.tell() >= EXPORT_CHUNK:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


# ----------------------------------------------------------------------------- PDF


def pdf(statement: dict[str, Any], creator_name: str, handle: str) -> bytes:
    """One page: who, which month, opening, activity by kind, fees, payouts, closing."""
    from reportlab.lib import colors  # type: ignore[import-untyped]
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.lib.styles import getSampleStyleSheet  # type: ignore[import-untyped]
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle  # type: ignore[import-untyped]

    cur = statement["currency"]
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm,
                            topMargin=20 * mm, bottomMargin=20 * mm,
                            title=f"Statement {statement['period']} {cur.upper()}",
                            author="creatorpay")
    styles = getSampleStyleSheet()
    story: list[Any] = [
        Paragraph("creatorpay monthly statement", styles["Title"]),
        Paragraph(f"Creator: {_esc(creator_name)} (@{_esc(handle)}, {statement['creator']})",
                  styles["Normal"]),
        Paragraph(f"Period: {statement['period']} (UTC) &nbsp; Currency: {cur.upper()} "
                  f"&nbsp; Status: {statement['status']}", styles["Normal"]),
        Spacer(1, 6 * mm),
    ]
    rows = [["", "Amount"], ["Opening balance", money(statement["opening_balance"], cur)]]
    for group, keys in (("Activity", ("tips", "subscriptions", "deals", "refunds",
                                      "disputes", "adjustments")),
                        ("Fees", ("processor_fees", "platform_fees")),
                        ("Payouts", ("payouts",))):
        rows.append([group, ""])
        rows.extend([f"    {LABELS[k]}", money(statement[k], cur)] for k in keys)
    rows.append(["Closing balance", money(statement["closing_balance"], cur)])
    table = Table(rows, colWidths=[110 * mm, 55 * mm])
    bold = [i for i, r in enumerate(rows) if r[1] == "" or i in (1, len(rows) - 1)]
    table.setStyle(TableStyle([
        ("ALIGN", (1, 0), (1, -1), "RIGHT"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
        ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
        *[("FONTNAME", (0, i), (-1, i), "Helvetica-Bold") for i in [0, *bold]],
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 3),
    ]))
    story.append(table)
    story.append(Spacer(1, 6 * mm))
    note = (f"{statement['line_count']} ledger lines; the CSV of this statement lists each. "
            "Balance = pending + available + reserved; opening + activity = closing.")
    if statement.get("checksum"):
        note += f" Checksum (SHA-256): {statement['checksum']}"
    story.append(Paragraph(note, styles["Small"] if "Small" in styles else styles["Normal"]))
    doc.build(story)
    return buf.getvalue()


def _esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["CSV_HEADER", "FIGURES", "csv_lines", "history_copy", "history_csv",
           "history_cursor", "money", "pdf"]
