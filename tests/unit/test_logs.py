"""The log formatter and the redaction filter (payments/logs.py), through the real handler."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from payments import logs
from payments.auth import ROLE_PREFIX
from payments.ids import random_token

KEYS = [f"{prefix}_{random_token(40)}" for prefix in ROLE_PREFIX.values()]
STRIPE = ["sk_test_51AbCdEfGhIjKlMnOp", "sk_live_51AbCdEfGhIjKlMnOpQr", "rk_live_51ZzYyXx",
          "whsec_0123456789abcdef0123456789abcdef", "pi_3Mtw_secret_YrKJUKribcBjcG8HVhfZluoGH"]
CARDS = ["4242424242424242", "4000 0566 5566 5556", "5555-5555-5555-4444", "378282246310005"]


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logs.LogHandler("json", stream=stream)
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_key_secret_and_card_is_masked_in_message_args_extra_and_traceback(
        captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    secrets = [*KEYS, *STRIPE]
    for value in [*secrets, *CARDS]:
        logger.info("in the message %s", value)
        logger.warning("in an extra field", extra={"detail": f"sent {value} here"})
        try:
            raise ValueError(f"bad value {value}")
        except ValueError:
            logger.exception("in a traceback")
    logger.info("headers %s", {"Authorization": "Bearer " + KEYS[0]})
    logger.info("url %s", "postgresql+psycopg://app:db-password@db/creatorpay")
    text = stream.getvalue()
    assert len(lines(stream)) == 3 * len(secrets + CARDS) + 2  # every line is one JSON object
    for value in secrets:
        assert value not in text
        assert value.split("_")[-1] not in text  # not even the random part
    for card in CARDS:
        assert card not in text and card.replace(" ", "").replace("-", "") not in text
    assert "db-password" not in text
    assert "[redacted]" in text and "[card redacted]" in text


def test_what_is_not_a_secret_stays_readable(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    # Public ids, a Stripe event id, amounts, a unix time and digits failing the Luhn check.
    # A UUID whose leading groups are digits, a run time's long fraction.
    uuid, took = "42424242-4242-4242-8aaa-0123456789ab", "0.4242424242424242"  # Luhn-valid runs
    logger.info("tip %s event %s amount %d at %d ref %s task %s took %s", "tip_8ZkQ2b",
                "evt_1PqRsT2eZvKYlo2C", 150000, 1733234567, "4242424242424241", uuid, took)
    [line] = lines(stream)
    assert line["message"] == ("tip tip_8ZkQ2b event evt_1PqRsT2eZvKYlo2C amount 150000 at "
                               f"1733234567 ref 4242424242424241 task {uuid} took {took}")
    assert line["level"] == "INFO" and line["logger"] == "tests.logs"
    assert {"time", "pid"} <= set(line)


def test_context_fields_ride_on_every_line_inside_their_block(
        captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("outside")
    with logs.context(request_id="req_abc"):
        logger.info("in the request")
        with logs.context(event_id="evt_123", task_id="t-1", task="webhooks.drain"):
            logger.warning("in the event")
        logger.info("after the event")
    outside, request, event, after = lines(stream)
    assert not {"request_id", "event_id", "task_id"} & set(outside)
    assert request["request_id"] == "req_abc" and "event_id" not in request
    assert (event["request_id"], event["event_id"], event["task_id"], event["task"]) == (
        "req_abc", "evt_123", "t-1", "webhooks.drain")
    assert after["request_id"] == "req_abc" and "event_id" not in after


def test_text_format_carries_the_context_and_masks_too() -> None:
    stream = io.StringIO()
    handler = logs.LogHandler("text", stream=stream)
    logger = logging.getLogger("tests.logs.text")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.context(event_id="evt_9"):
            logger.warning("key %s card %s", KEYS[1], CARDS[0])
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "[event_id=evt_9]" in out and "WARNING tests.logs.text" in out
    assert KEYS[1] not in out and CARDS[0] not in out


def test_configure_installs_one_root_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        first = logs.configure(fmt="json", level="INFO")
        again = logs.configure(fmt="json", level="INFO")
        assert first is again
        text = logs.configure(fmt="text", level="WARNING")
        mine = [h for h in root.handlers if isinstance(h, logs.LogHandler)]
        assert mine == [text] and text.fmt == "text" and root.level == logging.WARNING
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        root.handlers[:] = before
