"""Logging for the web tier, the workers and the CLI: one setup, JSON or text.

``configure(config)`` installs one handler on the root logger (``CREATORPAY_LOG_FORMAT``:
``json``, one object a line, the default; ``text`` for people at a terminal, which
``creatorpay dev`` picks). Every record is given the context it was logged in, as fields:

* ``request_id``: the web request's id (``X-Request-Id``; see ``payments.observe``);
* ``event_id``: the Stripe event the webhook worker is applying;
* ``task_id`` and ``task``: the Celery task running.

The code never logs a key, a secret or a card number; the redaction here is the second
defence: every formatted line (message, arguments, traceback, extra fields) is masked for
API keys (``ck_`` ``fk_`` ``bk_`` ``ak_``, payments/auth.py), Stripe keys (``sk_`` ``rk_``),
webhook secrets (``whsec_``), client secrets (``..._secret_...``), bearer tokens,
passwords in URLs and digit runs that pass the card-number (Luhn) check.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any

from pythonjsonlogger.orjson import OrjsonFormatter

if TYPE_CHECKING:
    from payments.config import Config

# What a record is logged inside of; read by ContextFilter into every record.
CONTEXT_FIELDS = ("request_id", "event_id", "task_id", "task")
_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"creatorpay_log_{name}", default=None) for name in CONTEXT_FIELDS
}


def current(name: str) -> str | None:
    return _context[name].get()


@contextlib.contextmanager
def context(**fields: str | None) -> Iterator[None]:
    """Log lines inside this block carry ``fields`` (``request_id``, ``event_id`` ...)."""
    tokens = [(_context[k], _context[k].set(v)) for k, v in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind(**fields: str | None) -> None:
    """Set context fields until ``unbind`` (Celery's prerun/postrun signals)."""
    for k, v in fields.items():
        _context[k].set(v)


def unbind(*names: str) -> None:
    for name in names:
        _context[name].set(None)


# -- redaction ------------------------------------------------------------------------------

# One pass for every kind of secret (an alternation, each kind a named group), one for
# card numbers: a line costs two regex scans, not one per pattern.
_SECRET = re.compile(
    # Our API keys: role prefix, underscore, 40 base62 characters (payments/auth.py).
    r"\b(?P<api>ck|fk|bk|ak)_[A-Za-z0-9]{12,}"
    # Stripe secret and restricted keys, webhook endpoint secrets.
    r"|\b(?P<stripe>(?:sk|rk)_(?:test|live))_[A-Za-z0-9]+"
    r"|\bwhsec_[A-Za-z0-9]+"
    # A PaymentIntent's or SetupIntent's client secret: pi_..._secret_...
    r"|_secret_[A-Za-z0-9]+"
    # Authorization headers, and a password inside a URL.
    r"|\b(?P<scheme>[Bb]earer|BEARER|[Bb]asic|BASIC)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|(?P<url>://[^:/@\s]+):[^@/\s]+@")
# 13 to 19 digits, optionally grouped by single spaces or dashes (4242 4242 4242 4242), on
# their own: not the fraction of a number (a run time of 0.034178639000060684 s), not inside
# an identifier or a UUID (a Celery task id 12345678-1234-4123-...).
_DIGIT_RUN = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w-])")


def _mask_secret(match: re.Match[str]) -> str:
    text = match.group(0)
    if match.group("api"):
        return match.group("api") + "_[redacted]"
    if match.group("stripe"):
        return match.group("stripe") + "_[redacted]"
    if match.group("scheme"):
        return match.group("scheme") + " [redacted]"
    if match.group("url"):
        return match.group("url") + ":[redacted]@"
    return "whsec_[redacted]" if text.startswith("whsec_") else "_secret_[redacted]"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = re.sub(r"[ -]", "", run)
    return "[card redacted]" if _luhn(digits) else run


# Literals one of which every match of _SECRET contains: a line holding none of them (nearly
# every line) skips that scan, which costs ten times the check.
_SECRET_MARKERS = re.compile("|".join(re.escape(m) for m in (
    "ck_", "fk_", "bk_", "ak_", "sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_",
    "_secret_", "earer", "EARER", "asic", "ASIC", "@")))


def redact(text: str) -> str:
    """``text`` with keys, secrets and card numbers masked."""
    if _SECRET_MARKERS.search(text):
        text = _SECRET.sub(_mask_secret, text)
    return _DIGIT_RUN.sub(_mask_card, text)


class ContextFilter(logging.Filter):
    """Adds the context fields (``request_id``, ``event_id``, ``task_id``, ``task``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, _context[name].get())
        return True


class RedactFilter(logging.Filter):
    """Masks secrets in the record's message and traceback before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: log what was given
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonLines(OrjsonFormatter):
    """One JSON object a line: time, level, logger, message, context and extra fields
    (encoded by orjson: half the cost of the json module per line)."""

    def __init__(self) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message"],
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        for name in CONTEXT_FIELDS:  # absent, not null, when a record has none
            if log_record.get(name) is None:
                log_record.pop(name, None)
        log_record["pid"] = record.process

    def format(self, record: logging.LogRecord) -> str:
        # The last pass: extra fields and tracebacks are masked too.
        return redact(str(super().format(record)))


class TextLines(logging.Formatter):
    """``time level logger [request/event/task] message`` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        tags = [f"{n}={v}" for n in CONTEXT_FIELDS if (v := getattr(record, n, None))]
        record.context = f" [{' '.join(tags)}]" if tags else ""
        return redact(super().format(record))


def formatter(fmt: str) -> logging.Formatter:
    return JsonLines() if fmt == "json" else TextLines()


class LogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler: context, redaction and the chosen format. Without a stream it
    writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self, fmt: str = "json", stream: IO[str] | None = None) -> None:
        lazy = stream is None
        super().__init__(stream)
        self._lazy = lazy
        self.fmt = fmt
        self.addFilter(ContextFilter())
        self.addFilter(RedactFilter())
        self.setFormatter(formatter(fmt))

    @property
    def stream(self) -> IO[str]:
        return sys.stderr if self._lazy else self._stream

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        self._stream = value


def configure(config: Config | None = None, *, fmt: str | None = None,
              level: str | None = None) -> LogHandler:
    """Install the one root handler (idempotent: called by the app factory, the worker and
    the CLI); answers it."""
    if config is None and (fmt is None or level is None):
        from payments.config import load_config

        config = load_config()
    fmt = fmt or (config.log_format if config else "json")
    level = level or (config.log_level if config else "INFO")
    root = logging.getLogger()
    root.setLevel(level)
    mine = [h for h in root.handlers if isinstance(h, LogHandler)]
    for handler in mine:
        if handler.fmt == fmt and handler._lazy:
            return handler
        root.removeHandler(handler)
    handler = LogHandler(fmt)
    root.addHandler(handler)
    # gunicorn logs through its own loggers; send them to ours (its access log is replaced by
    # the request line of payments.observe, which carries the request id).
    for name in ("gunicorn.error",):
        gl = logging.getLogger(name)
        gl.handlers = [handler]
        gl.propagate = False
    logging.getLogger("gunicorn.access").disabled = True
    # werkzeug's own access lines (the test and debug servers) would repeat ours.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # The stripe SDK logs two lines per API call at INFO; its warnings and errors still show.
    logging.getLogger("stripe").setLevel(logging.WARNING)
    # Alembic announces each of its plugins at INFO; its migration lines stay.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return handler


def gunicorn_logconfig(fmt: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: the master's lines in our format too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"creatorpay": {"()": LogHandler, "fmt": fmt}},
        "root": {"level": "INFO", "handlers": ["creatorpay"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["creatorpay"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
