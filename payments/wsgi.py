"""WSGI entry point for gunicorn: ``gunicorn payments.wsgi:app``."""

from __future__ import annotations

import sys

from payments import create_app
from payments.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    print(f"creatorpay: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
