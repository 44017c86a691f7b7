"""``creatorpay payouts run`` and ``creatorpay reconcile --date``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from payments.config import load_config


def _configure() -> None:
    from payments import clock
    from payments.db import db

    config = load_config()
    db.configure(config.database_url)
    clock.follow(config.clock_url)


@click.group("payouts")
def payouts() -> None:
    """Payouts to creators' connected accounts."""


@payouts.command("run")
def run_cmd() -> None:
    """Make the automatic payouts that are due now and send their transfers."""
    from payments.db import session_scope
    from payments.gateway import gateway_for
    from payments.payouts import service, transfers
    from payments.payouts.models import Payout

    _configure()
    config = load_config()
    with session_scope() as session:
        made = service.run_schedule(session, config.payout_minimums)
    for pid in made:
        with session_scope() as session:
            payout = session.get(Payout, pid)
            assert payout is not None
            transfers.make_transfer(gateway_for(config), session, payout)
    click.echo(f"made {len(made)} payouts")


@click.command("reconcile")
@click.option("--date", "day", default=None, help="YYYY-MM-DD (UTC); default yesterday")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def reconcile_cmd(day: str | None, as_json: bool) -> None:
    """Compare the ledger with Stripe's balance transactions and transfers of a day."""
    from payments.clock import now_ts
    from payments.db import session_scope
    from payments.gateway import gateway_for
    from payments.reconciliation import service

    _configure()
    config = load_config()
    if day is None:
        day = datetime.fromtimestamp(now_ts() - 86400, UTC).strftime("%Y-%m-%d")
    try:
        service.parse_day(day)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--date") from None
    with session_scope() as session:
        report = service.reconcile(session, gateway_for(config), day, store=True)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for cur in report["currencies"]:
            click.echo(f"{cur['currency']}: stripe {cur['stripe_net']} ledger "
                       f"{cur['ledger_net']} difference {cur['difference']}")
        for d in report["differences"]:
            click.echo(f"  {service.describe(d)}")
        for c in report["clearing"]:
            click.echo(f"  clearing {c['account']} {c['currency']}: {c['balance']} "
                       f"(expected {c['expected']})")
    click.echo(f"reconcile {day}: {'CLEAN' if report['clean'] else 'DIFFERENCES'}")
    if not report["clean"]:
        sys.exit(1)


commands = [payouts, reconcile_cmd]
