"""A new domain is one package and one line in ``payments.domains.DOMAINS``.

The test writes a throwaway domain package (a blueprint and one event route) to a temporary
folder, adds its name to the list, and shows its route served and a signed event of its kind
reaching its handler through the inbox and a real worker, with no edit anywhere else. An event
of another domain's kind never reaches it.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from payments import domains
from payments.config import Config
from payments.gateway import sign_payload
from tests.fixtures.workers import wait_for

PACKAGE = "creatorpay_throwaway_domain"

FILES = {
    "__init__.py": '''
        from payments.domains import Domain

        DOMAIN = Domain(
            name="throwaway",
            views="creatorpay_throwaway_domain.views",
            events="creatorpay_throwaway_domain.events",
        )
    ''',
    "views.py": '''
        from flask.views import MethodView
        from flask_smorest import Blueprint

        blp = Blueprint("throwaway", __name__, url_prefix="/v1/throwaway")


        @blp.route("/ping")
        class Ping(MethodView):
            def get(self):
                return {"pong": True}
    ''',
    "events.py": '''
        from payments.events import EventRoutes, Route

        SEEN = []


        def on_customer(session, obj, ctx):
            SEEN.append(obj["id"])


        EVENTS = EventRoutes(
            kinds=frozenset({"throwaway"}),
            routes={"customer.created": Route(on_customer),
                    "charge.succeeded": Route(on_customer)},
        )
    ''',
}


@pytest.fixture
def throwaway_domain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    package = tmp_path / PACKAGE
    package.mkdir()
    for name, text in FILES.items():
        (package / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(domains, "DOMAINS", (*domains.DOMAINS, PACKAGE))
    try:
        yield importlib.import_module(f"{PACKAGE}.events")
    finally:
        for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
            del sys.modules[name]


def _event(type_: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"evt_throwaway_{obj['id']}", "object": "event", "type": type_,
            "created": 1_700_000_000, "livemode": False, "api_version": "2024-06-20",
            "data": {"object": obj}}


def test_a_throwaway_domain_is_served_and_gets_its_events(
    throwaway_domain: Any, celery_worker: Any, committed_db: Config,
) -> None:
    from payments import create_app

    client = create_app(committed_db).test_client()
    assert client.get("/v1/throwaway/ping").get_json() == {"pong": True}
    assert "/v1/throwaway/ping" in client.get("/openapi.json").get_json()["paths"]

    secret = committed_db.stripe_webhook_secrets[0]
    mine = _event("customer.created", {"id": "cus_mine", "object": "customer",
                                       "metadata": {"creatorpay_kind": "throwaway"}})
    # charge.succeeded is the tips domain's too: the kind says whose this one is.
    also_mine = _event("charge.succeeded", {"id": "ch_mine", "object": "charge",
                                            "metadata": {"creatorpay_kind": "throwaway"}})
    a_tip = _event("charge.succeeded", {"id": "ch_tip", "object": "charge", "captured": False,
                                        "metadata": {"creatorpay_kind": "tip",
                                                     "tip_id": "tip_nosuchtip"}})
    for event in (mine, also_mine, a_tip):
        body = orjson.dumps(event)
        r = client.post("/webhooks/stripe", data=body, content_type="application/json",
                        headers={"Stripe-Signature": sign_payload(body, secret)})
        assert r.status_code == 200, r.get_data(as_text=True)
        assert r.get_json() == {"received": True, "stored": True}

    # A handler may run twice for one event (its batch redone event by event after another
    # event failed), its database writes rolled back in between: SEEN is not transactional.
    wait_for(lambda: set(throwaway_domain.SEEN) == {"ch_mine", "cus_mine"}, timeout=30)

    from sqlalchemy import select

    from payments.db import session_scope
    from webhooks.models import WebhookEvent

    def statuses() -> dict[str, str]:
        with session_scope() as s:
            return dict(s.execute(select(WebhookEvent.stripe_id, WebhookEvent.status)).all())

    # The tip event went to the tips domain alone, which knows no such tip.
    wait_for(lambda: statuses().get(a_tip["id"]) == "failed", timeout=30)
    assert statuses() == {mine["id"]: "processed", also_mine["id"]: "processed",
                          a_tip["id"]: "failed"}
