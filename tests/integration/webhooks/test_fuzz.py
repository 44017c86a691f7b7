"""Property-based fuzzing of the webhook path: the endpoint with random signed bodies, and every
handler of every domain with random and mutated Stripe objects.

What must hold whatever arrives: the endpoint answers 200 or 400 (never a 5xx); an event the
worker applies ends settled on its own row (processed, failed with a reason, or waiting for
a retry), never an exception out of the worker, never a row left due to be claimed first
again; and the ledger still verifies. The event types come from the domain list, so a new
domain's handlers are fuzzed the day it lands.
"""

from __future__ import annotations

import copy
import json
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from payments.clock import now_ts
from payments.db import session_scope
from payments.gateway import GatewayError, TransientGatewayError, sign_payload
from payments.ledger import service as ledger
from tests.fixtures.summary import count
from webhooks import inbox
from webhooks.models import FAILED, PROCESSED, RECEIVED, WebhookEvent
from webhooks.routes import route_table
from webhooks.worker import process_rows

FIXTURES = json.loads((Path(__file__).parents[3] / "payments" / "sandbox" / "fixtures.json")
                      .read_text())["resources"]
EXAMPLES = 150
KINDS = sorted({k for _, routes in route_table().domains for k in routes.kinds}) + ["other"]


def _object_for(event_type: str) -> dict[str, Any]:
    """Stripe's own example of the object an event of this type carries."""
    base = event_type.split(".")[0]
    name = {"charge": "charge", "customer": "subscription"}.get(base, base)
    if event_type.startswith("charge.dispute"):
        name = "dispute"
    if event_type.startswith("charge.refund"):
        name = "refund"
    return copy.deepcopy(FIXTURES.get(name) or FIXTURES["charge"])


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(sorted(route_table().handled_types)))
    obj = _object_for(event_type)
    # Objects of ours name a kind and a public id; some do not.
    kind = draw(st.sampled_from(KINDS))
    if draw(st.booleans()):
        obj["metadata"] = {"creatorpay_kind": kind,
                           f"{kind}_id": draw(st.sampled_from([f"{kind}_x", "", "nope"]))}
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(sorted(obj) or ["id"]))
        if draw(st.booleans()):
            obj.pop(key, None)
        else:
            obj[key] = draw(json_value)
    data: Any = {"object": obj}
    if draw(st.integers(0, 19)) == 0:
        data = draw(json_value)  # not even an object
    return {"id": "evt_fuzz_" + secrets.token_hex(10), "object": "event", "type": event_type,
            "created": now_ts() - draw(st.integers(0, 3600)), "livemode": False,
            "data": data}


class FuzzedStripe:
    """Stripe's answers to the handlers' reads: an object shaped like Stripe's, garbage, or an
    error, as the draw says."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def _answer(self, name: str, ident: str) -> dict[str, Any]:
        choice = self.draw(st.integers(0, 5))
        if choice == 0:
            raise GatewayError(f"No such {name}: '{ident}'", code="resource_missing",
                               http_status=404)
        if choice == 1:
            raise TransientGatewayError("connection reset")
        found = copy.deepcopy(FIXTURES[name])
        found["id"] = ident
        if choice == 2:
            key = self.draw(st.sampled_from(sorted(found)))
            found[key] = self.draw(json_value)
        return found

    def balance_transaction(self, txn_id: str) -> dict[str, Any]:
        return self._answer("balance_transaction", txn_id)

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return self._answer("charge", charge_id)

    def prefetch(self, txn_ids: Any, created_range: tuple[int, int]) -> None:
        list(txn_ids)

    def new_batch(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        # Any other read a domain adds (invoices, subscriptions, transfers ...).
        if name.startswith("retrieve_"):
            return lambda ident, *a, **k: self._answer(
                name.removeprefix("retrieve_") if name.removeprefix("retrieve_") in FIXTURES
                else "charge", str(ident))
        raise AttributeError(name)


def _settled(row: WebhookEvent) -> bool:
    return row.status in (PROCESSED, FAILED) or (
        row.status == RECEIVED and row.next_attempt_at > now_ts() and row.last_error)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), batch=st.lists(mutated_events(), min_size=1, max_size=4))
def test_every_handler_settles_every_mutated_event(
    db_session: Any, data: st.DataObject, batch: list[dict[str, Any]],
) -> None:
    count("hypothesis examples, webhook handlers (batches of mutated events)")
    count("hypothesis examples, webhook handlers: events applied", len(batch))
    with session_scope() as session:
        stored = inbox.store_events_returning(session, batch, via="webhook")
        rows = list(session.scalars(select(WebhookEvent).where(
            WebhookEvent.id.in_(stored.values())).order_by(WebhookEvent.id)))
        with session.begin_nested():
            process_rows(session, rows, FuzzedStripe(data.draw),  # type: ignore[arg-type]
                         Decimal("0.10"), batched=data.draw(st.booleans()))
        session.flush()
        for row in rows:
            session.refresh(row)
            assert _settled(row), (row.type, row.status, row.last_error)
            assert row.attempts == 1
        assert ledger.verify(session).ok


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()  # orjson refuses integers past 64 bits; Stripe need not


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=200),
    json_value.map(_encode),
    mutated_events().map(_encode),
    st.fixed_dictionaries({"id": json_value, "type": json_value, "data": json_value,
                           "created": json_value, "livemode": json_value}).map(_encode),
    # A type we handle, every other top-level field drawn at random.
    st.fixed_dictionaries({"id": st.one_of(st.text(max_size=30), st.text(min_size=250,
                                                                          max_size=300),
                                            json_value),
                           "type": st.sampled_from(sorted(route_table().handled_types)),
                           "data": json_value, "created": json_value,
                           "livemode": json_value}).map(_encode),
))
def test_the_endpoint_answers_any_signed_body_with_200_or_400(
    client: Any, base_config: Any, body: bytes,
) -> None:
    count("hypothesis examples, webhook endpoint (signed bodies)")
    secret = base_config.stripe_webhook_secrets[0]
    with mock.patch("webhooks.endpoint.notifier"):  # no drain: only the answer is tested
        r = client.post("/webhooks/stripe", data=body, content_type="application/json",
                        headers={"Stripe-Signature": sign_payload(body, secret)})
    assert r.status_code in (200, 400), (r.status_code, r.get_data(as_text=True), body[:200])
    assert r.is_json
