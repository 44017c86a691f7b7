"""The ``creatorpay`` command line: database, keys, servers, operations.

Domains add their own groups (``ledger``, ``webhooks``) through ``payments.domains``; the
sandbox (a development tool, not a domain) adds ``sandbox``.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from payments.config import ConfigError, load_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """creatorpay: creator monetization and payments backend.

    Every command reads the same CREATORPAY_* environment as the web app and the workers
    (README.md, "Configuration"): CREATORPAY_DATABASE_URL, CREATORPAY_BROKER_URL, the
    Stripe keys. Logs go to stderr as JSON (CREATORPAY_LOG_FORMAT=text for plain lines).

    \b
    Start here:
      creatorpay dev                 the whole stack on this machine (make run)
      creatorpay db upgrade          migrate the database (on every deploy)
      creatorpay serve               the API under gunicorn
      creatorpay admin create-key    an admin API key
      creatorpay ledger verify       check the books
      creatorpay webhooks status     the webhook inbox and its failed events
      creatorpay metrics show        what GET /metrics answers

    Run any command with --help for what it does and its options.
    """


@cli.group()
def db() -> None:
    """Database schema: Alembic migrations (run `db upgrade` on every deploy)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True,
              help="The Alembic revision to migrate to.")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (the newest by default); safe to run again."""
    from payments.migrate import upgrade

    config = load_config()
    upgrade(config.database_url, revision)
    click.echo(f"database at {revision}: {_redact(config.database_url)}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (``base`` for an empty database)."""
    from payments.migrate import downgrade

    downgrade(load_config().database_url, revision)
    click.echo(f"database at {revision}")


@cli.group()
def admin() -> None:
    """Operator tasks: admin API keys (create, rotate, revoke)."""


@admin.command("create-key")
@click.option("--label", default=None, help="Who or what the key is for.")
def admin_create_key(label: str | None) -> None:
    """Create an admin API key and print it (it is shown this once)."""
    from payments.auth import issue_key
    from payments.db import db as database
    from payments.db import session_scope

    database.configure(load_config().database_url)
    with session_scope() as session:
        key = issue_key(session, "admin", None, label=label)
    click.echo(key)


@admin.command("revoke-key")
@click.argument("key")
def admin_revoke_key(key: str) -> None:
    """Revoke KEY, an API key of any role (ck_, fk_, bk_ or ak_); it stops working at once."""
    from payments.auth import revoke_key
    from payments.db import db as database
    from payments.db import session_scope

    database.configure(load_config().database_url)
    with session_scope() as session:
        found = revoke_key(session, key)
    if not found:
        raise click.ClickException("no such key")
    click.echo("revoked")


@admin.command("rotate-key")
@click.option("--key", "old_key", prompt="current admin key", hide_input=True,
              help="The admin key to replace (prompted for, so it stays out of shell history).")
def admin_rotate_key(old_key: str) -> None:
    """Replace an admin key: print a new one (shown this once) and revoke the old one."""
    from payments.auth import rotate_key
    from payments.db import db as database
    from payments.db import session_scope

    database.configure(load_config().database_url)
    with session_scope() as session:
        new_key = rotate_key(session, old_key.strip(), role="admin")
    if new_key is None:
        raise click.ClickException("no such active admin key")
    click.echo(new_key)


@cli.command("serve")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
@click.option("--threads", default=4, show_default=True,
              help="threads per gunicorn worker")
def serve(workers: int, threads: int) -> None:
    """Serve the API with gunicorn on 127.0.0.1:$CREATORPAY_PORT (payments.wsgi:app).

    For production, run gunicorn yourself with the same entry point and a public bind
    (README.md, "Deploying").
    """
    from payments.devserver import gunicorn_argv

    config = load_config()
    argv = gunicorn_argv(config.port, workers, threads)
    import os

    os.execvp(argv[0], argv)  # noqa: S606 - replace this process with gunicorn


@cli.command("dev", context_settings={"ignore_unknown_options": True})
@click.option("--no-sandbox", is_flag=True, help="Talk to the Stripe API base configured instead.")
@click.option("--no-migrate", is_flag=True, help="Do not run `db upgrade` first.")
def dev(no_sandbox: bool, no_migrate: bool) -> None:
    """Run the whole stack (sandbox, web, worker, beat) under one supervisor; Ctrl-C stops all.

    Logs are text lines here (CREATORPAY_LOG_FORMAT=json for JSON); the processes share
    var/prometheus, so GET /metrics counts every web and worker process.
    """
    from payments.devserver import run_stack

    sys.exit(run_stack(sandbox=not no_sandbox, migrate=not no_migrate))


@cli.group()
def metrics() -> None:
    """Prometheus metrics: print them, serve a worker host's, roll the ledger's counters."""


@metrics.command("show")
def metrics_show() -> None:
    """Print what GET /metrics answers: the database's metrics and this process's."""
    from payments.db import db as database
    from payments.db import session_scope
    from payments.metrics import exposition

    database.configure(load_config().database_url)
    with session_scope() as session:
        body, _ = exposition(session)
    click.echo(body.decode(), nl=False)


@metrics.command("serve")
@click.option("--port", default=9100, show_default=True, help="Port to serve /metrics on.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to bind.")
def metrics_serve(port: int, bind: str) -> None:
    """Serve this host's per-process metrics (PROMETHEUS_MULTIPROC_DIR: its Celery workers'
    task failures and retries) for Prometheus to scrape; the database's metrics are the
    web tier's GET /metrics."""
    import time

    from prometheus_client import start_http_server

    from payments.metrics import process_registry

    start_http_server(port, addr=bind, registry=process_registry())
    click.echo(f"serving metrics on http://{bind}:{port}/metrics")
    while True:
        time.sleep(3600)


@metrics.command("roll")
def metrics_roll() -> None:
    """Roll the ledger's postings counters forward now (beat does it every minute)."""
    from payments.db import db as database
    from payments.db import session_scope
    from payments.ledger.metrics import roll

    database.configure(load_config().database_url)
    with session_scope() as session:
        n = roll(session)
    click.echo(f"ledger metrics: {n} new entries counted")


@cli.command("demo")
@click.option("--api-url", default=None, help="The API [default: http://127.0.0.1:$CREATORPAY_PORT]")
@click.option("--sandbox-url", default=None,
              help="The Stripe sandbox [default: http://127.0.0.1:$CREATORPAY_SANDBOX_PORT]")
@click.option("--admin-key", envvar="CREATORPAY_ADMIN_KEY", default=None,
              help="An ak_ admin key [default: $CREATORPAY_VAR_DIR/admin_key, made by "
                   "`creatorpay dev`]")
def demo(api_url: str | None, sandbox_url: str | None, admin_key: str | None) -> None:
    """Walk through the mission against the `make run` stack, then check every figure.

    Exit 0 when everything reconciles, 1 when a check fails, 2 when the stack is not up.
    """
    from payments.demo import default_admin_key, run_demo

    config = load_config()
    sys.exit(run_demo(
        api_url or f"http://127.0.0.1:{config.port}",
        sandbox_url or f"http://127.0.0.1:{config.sandbox_port}",
        admin_key or default_admin_key(config.var_dir),
        config.platform_fee_rate,
    ))


def _load_domain_commands() -> None:
    from payments import domains
    from payments.sandbox.cli import commands as sandbox_commands

    for command in [*domains.commands(), *sandbox_commands]:
        _help_everywhere(command)
        cli.add_command(command)


def _help_everywhere(command: click.Command) -> None:
    """``-h`` as well as ``--help`` on every command a domain adds, however it is invoked. Click
    keeps a command's help option once made: drop one made before this setting."""
    command.context_settings.setdefault("help_option_names", ["-h", "--help"])
    command._help_option = None
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _help_everywhere(sub)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main(argv: list[str] | None = None) -> Any:
    try:
        config = load_config()  # fail fast, in one line, on a bad environment
        from payments import clock, logs

        logs.configure(config)

        clock.follow(config.clock_url)  # the sandbox's clock, when Stripe is the sandbox
        _load_domain_commands()
        return cli.main(args=argv, prog_name="creatorpay", standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"creatorpay: configuration error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
