"""The gateway against the sandbox: concurrency, idempotency, events paging."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from payments.gateway import Gateway, idempotency_key
from tests.fixtures.sandbox import SandboxHandle


def test_fifty_concurrent_identical_requests_make_one_payment(gateway: Gateway,
                                                              sandbox: SandboxHandle) -> None:
    marker = uuid.uuid4().hex
    key = idempotency_key("tip", marker)

    def create(_: int) -> str:
        return gateway.create_payment_intent(amount=2500, currency="usd",
                                             metadata={"tip_id": marker}, idempotency_key=key,
                                             payment_method="pm_card_visa", confirm=True)["id"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = set(pool.map(create, range(50)))
    assert len(ids) == 1
    assert sandbox.count("payment_intent", {"tip_id": marker}) == 1
    assert sandbox.count("charge", {"tip_id": marker}) == 1


def test_list_events_filters_and_paging(gateway: Gateway, sandbox: SandboxHandle) -> None:
    start = sandbox.now()
    cus = gateway.create_customer(idempotency_key=uuid.uuid4().hex)
    pis = [gateway.create_payment_intent(amount=1000 + i, currency="usd", metadata={},
                                         idempotency_key=uuid.uuid4().hex, customer=cus["id"],
                                         payment_method="pm_card_visa", confirm=True)
           for i in range(3)]
    page = gateway.list_events(types=["payment_intent.succeeded"], created_gte=start, limit=100)
    ours = [e for e in page["data"] if e["data"]["object"]["id"] in {p["id"] for p in pis}]
    assert [e["data"]["object"]["id"] for e in ours] == [p["id"] for p in reversed(pis)]
    assert all(e["type"] == "payment_intent.succeeded" for e in page["data"])
    first = gateway.list_events(limit=2, types=["payment_intent.*", "charge.succeeded"],
                                created_gte=start)
    assert len(first["data"]) == 2 and first["has_more"]
    older = gateway.list_events(limit=2, starting_after=first["data"][-1]["id"],
                                created_gte=start)
    assert older["data"][0]["created"] <= first["data"][-1]["created"]
    newer = gateway.list_events(limit=5, ending_before=older["data"][0]["id"])
    assert first["data"][-1]["id"] in [e["id"] for e in newer["data"]]
    assert gateway.retrieve_event(first["data"][0]["id"])["id"] == first["data"][0]["id"]


def test_connected_account_events_are_scoped(gateway: Gateway, sandbox: SandboxHandle) -> None:
    acct = gateway.create_account(idempotency_key=uuid.uuid4().hex, country="US")
    sandbox.onboard(acct["id"])
    scoped = gateway.list_events(stripe_account=acct["id"], types=["account.updated"])
    assert [e["account"] for e in scoped["data"]] == [acct["id"]]
    platform = gateway.list_events(types=["account.updated"], limit=100)
    assert acct["id"] not in {e.get("account") for e in platform["data"]}
