"""``creatorpay sandbox``: run the offline Stripe sandbox in the foreground."""

from __future__ import annotations

import click

from payments.sandbox.server import serve


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
@click.option("--port", type=int, default=12111, show_default=True,
              envvar="CREATORPAY_SANDBOX_PORT", help="Port (0 picks a free one).")
@click.option("--webhook-url", default=None,
              help="Deliver signed webhooks here (more with POST /_sandbox/webhooks/endpoints).")
@click.option("--webhook-secret", default=None, envvar="CREATORPAY_STRIPE_WEBHOOK_SECRET",
              help="Signing secret for --webhook-url (generated and printed when unset).")
@click.option("--quiet", is_flag=True, help="Print nothing at start-up.")
def sandbox(host: str, port: int, webhook_url: str | None, webhook_secret: str | None,
            quiet: bool) -> None:
    """Offline Stripe on loopback: Stripe's REST API on /v1, controls on /_sandbox."""
    serve(host, port, webhook_url, webhook_secret, quiet=quiet)


commands = [sandbox]
