"""``creatorpay webhooks ...``: operate the inbox."""

from __future__ import annotations

import click

from payments.config import load_config
from payments.db import db, session_scope


@click.group("webhooks")
def webhooks() -> None:
    """The Stripe webhook inbox."""


@webhooks.command("replay")
@click.option("--event", "event_ids", multiple=True,
              help="A Stripe event id (evt_...); repeatable.")
@click.option("--failed", "all_failed", is_flag=True, help="Every event marked failed.")
@click.option("--now", "inline", is_flag=True, help="Process here instead of enqueueing.")
def replay(event_ids: tuple[str, ...], all_failed: bool, inline: bool) -> None:
    """Put events back in the queue (or process them here with --now)."""
    from webhooks import inbox

    if not event_ids and not all_failed:
        raise click.UsageError("name events with --event, or use --failed")
    config = load_config()
    db.configure(config.database_url)
    with session_scope() as session:
        ids = [inbox.replay(session, inbox.get_by_stripe_id(session, e).id).id for e in event_ids]
        if all_failed:
            ids += inbox.replay_failed(session)
    click.echo(f"{len(ids)} event(s) queued again")
    if not ids:
        return
    if inline:
        from webhooks.worker import drain

        with click.progressbar(length=len(ids), label="processing") as bar:
            done = drain(config)
            bar.update(len(ids))
        click.echo(f"processed {done} event(s)")
        _echo_failed(limit=len(ids))
    else:
        from payments.queue import celery_enqueue

        celery_enqueue(config.broker_url)("webhooks.drain")
        click.echo("enqueued webhooks.drain")


@webhooks.command("status")
@click.option("--failed", "show_failed", default=20, show_default=True,
              help="List this many of the newest failed events with their reason (0: none).")
def status(show_failed: int) -> None:
    """Count inbox rows by status; list the newest failed events with their reason."""
    from webhooks import inbox

    db.configure(load_config().database_url)
    with session_scope() as session:
        counts = inbox.counts_by_status(session)
    for name in ("received", "processed", "failed"):
        click.echo(f"{name:>10}: {counts.get(name, 0)}")
    if counts.get("failed") and show_failed > 0:
        _echo_failed(show_failed)


def _echo_failed(limit: int) -> None:
    from webhooks import inbox

    with session_scope() as session:
        rows, more = inbox.list_events(session, "failed", limit, None)
        if not rows:
            return
        click.echo("failed events (newest first; replay with --event or --failed):")
        for row in rows:
            click.echo(f"  {row.stripe_id}  {row.type}  attempts={row.attempts}")
            click.echo(f"      {row.last_error}")
        if more:
            click.echo("  ... and more: GET /v1/admin/webhook-events?status=failed")


@webhooks.command("backfill")
def backfill() -> None:
    """Fetch events we missed from Stripe's Events API into the inbox."""
    from webhooks.worker import backfill as run

    config = load_config()
    db.configure(config.database_url)
    click.echo(f"{run(config)} new event(s) stored")


commands = [webhooks]
