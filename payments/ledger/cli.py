"""``creatorpay ledger ...``: verify the books, roll checkpoints, mature holds."""

from __future__ import annotations

import sys
import time

import click

from payments.config import load_config


@click.group("ledger")
def ledger() -> None:
    """The double-entry ledger."""


def _configure() -> None:
    from payments.db import db

    db.configure(load_config().database_url)


@ledger.command("verify")
@click.option("--quiet", is_flag=True, help="Only the verdict line.")
def verify_cmd(quiet: bool) -> None:
    """Recompute every balance from the entries; exit 1 on any drift."""
    from rich.console import Console
    from rich.table import Table

    from payments.db import session_scope
    from payments.ledger.service import verify

    _configure()
    console = Console(stderr=False)
    started = time.monotonic()
    with console.status("verifying the ledger...") as status, session_scope() as session:
        report = verify(session, progress=lambda step: status.update(f"verifying: {step}..."))
    took = time.monotonic() - started
    if not quiet:
        table = Table(title="ledger totals per currency")
        table.add_column("currency")
        table.add_column("total", justify="right")
        for cur, total in report.totals.items():
            table.add_row(cur, str(total))
        console.print(table)
        for d in report.drifts[:50]:
            console.print(f"[red]drift[/red] {d.what} {d.name} (account {d.account_id}): "
                          f"stored {d.stored}, entries say {d.from_entries}")
        for jid in report.unbalanced_journals[:50]:
            console.print(f"[red]unbalanced journal[/red] {jid}")
        for jid in report.bad_leg_counts[:50]:
            console.print(f"[red]journal with missing entries[/red] {jid}")
        for jid in report.orphan_journal_ids[:50]:
            console.print(f"[red]entries for a journal that does not exist[/red] {jid}")
        if report.currency_mismatches:
            console.print(f"[red]{report.currency_mismatches} entries in a foreign currency[/red]")
    verdict = "OK" if report.ok else "DRIFT"
    click.echo(
        f"ledger verify: {verdict}: {report.accounts} accounts, {report.journals} journals, "
        f"{report.entries} entries in {took:.1f}s"
    )
    if not report.ok:
        sys.exit(1)


@ledger.command("trial-balance")
def trial_balance_cmd() -> None:
    """Every account's balance and the total per currency; exit 1 unless each total is 0."""
    from rich.console import Console
    from rich.table import Table

    from payments.db import session_scope
    from payments.ledger.service import trial_balance

    _configure()
    with session_scope() as session:
        report = trial_balance(session)
    table = Table(title="trial balance")
    for column in ("account", "owner", "purpose", "currency"):
        table.add_column(column)
    table.add_column("balance", justify="right")
    for row in report["accounts"]:
        table.add_row(row["account"], str(row["owner"]), row["purpose"], row["currency"],
                      str(row["balance"]))
    Console().print(table)
    off = [t for t in report["totals"] if t["total"] != 0]
    totals = ", ".join(f"{t['currency']} {t['total']}" for t in report["totals"]) or "no accounts"
    click.echo(f"trial balance: {'OK' if not off else 'NOT ZERO'}: {totals}")
    if off:
        sys.exit(1)


@ledger.command("checkpoint")
def checkpoint_cmd() -> None:
    """Roll the platform accounts' balance checkpoints forward now."""
    from payments.db import session_scope
    from payments.ledger.service import checkpoint

    _configure()
    with session_scope() as session:
        n = checkpoint(session)
    click.echo(f"checkpointed {n} platform accounts")


@ledger.command("mature")
def mature_cmd() -> None:
    """Mature due pending credits into available now."""
    from payments.db import session_scope
    from payments.ledger.service import mature_due

    _configure()
    config = load_config()
    with session_scope() as session:
        n = mature_due(session, default_hold_days=config.hold_days)
    click.echo(f"matured {n} journals")


commands = [ledger]
