"""``creatorpay statements generate --period YYYY-MM``."""

from __future__ import annotations

import click

from payments.config import load_config


@click.group("statements")
def statements() -> None:
    """Monthly statements."""


@statements.command("generate")
@click.option("--period", required=True, help="YYYY-MM: freeze every ended month up to it")
def generate_cmd(period: str) -> None:
    """Make every creator's months final up to ``--period`` (those that have ended)."""
    from rich.progress import Progress

    from payments import clock
    from payments.db import db, session_scope
    from payments.statements import service

    if service.parse_period(period) is None:
        raise click.BadParameter("must be YYYY-MM", param_hint="--period")
    config = load_config()
    db.configure(config.database_url)
    clock.follow(config.clock_url)
    with Progress() as progress:
        task = progress.add_task("statements", total=None)

        def step(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        made = service.freeze_all(session_scope, through=period, progress=step)
    click.echo(f"statements: {made} months made final up to {period}")


commands = [statements]
